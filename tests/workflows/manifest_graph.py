"""The step-level graph of a rendered WorkflowTemplate: the ``main`` DAG's tasks with every nested DAG
template expanded (issue 18's per-shard sub-DAG): its inner tasks are steps, and the task that runs it
stands, for the tasks after it, for all of them."""

from __future__ import annotations


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def main_tasks(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in templates(doc)[doc["spec"]["entrypoint"]]["dag"]["tasks"]}


def depends(task: dict) -> set[str]:
    """The task names of a ``depends`` made of ``&&`` (``a.Succeeded`` counts as ``a``)."""
    return {d.strip().split(".")[0] for d in task.get("depends", "").split("&&") if d.strip()}


def step_upstream(doc: dict) -> dict[str, set[str]]:
    """Step -> the steps it waits for. A main task's ``depends`` (a sub-DAG task there means every step of
    the sub-DAG); an inner task's ``depends`` inside its sub-DAG plus everything the sub-DAG task waits for."""
    tmpls, tasks = templates(doc), main_tasks(doc)
    inner = {name: {t["name"]: t for t in tmpls[t["template"]]["dag"]["tasks"]}
             for name, t in tasks.items() if "dag" in tmpls[t["template"]]}

    def steps(names: set[str]) -> set[str]:
        return set().union(*(set(inner[n]) if n in inner else {n} for n in names)) if names else set()

    out: dict[str, set[str]] = {}
    for name, task in tasks.items():
        if name in inner:
            for step, t in inner[name].items():
                out[step] = depends(t) | steps(depends(task))
        else:
            out[name] = steps(depends(task))
    return out
