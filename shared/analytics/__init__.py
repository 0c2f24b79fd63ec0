"""Pure analytics: arrays/DataFrames in, tidy DataFrames out. No I/O, no settings, no clock."""
