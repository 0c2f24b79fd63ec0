"""The pipeline DAG (plain data), its local runner and its Argo rendering."""
