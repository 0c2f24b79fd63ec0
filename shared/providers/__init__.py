"""Market-data providers: one small interface per data kind, several implementations each."""
