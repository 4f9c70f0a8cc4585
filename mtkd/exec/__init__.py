"""Execution: the batch runner (stages, then notebooks), the CLI, time estimates, and the Ray and
accelerate executors. The top layer: it may import every other."""
