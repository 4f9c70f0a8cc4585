"""The study: params, teachers, logit caches, the stages of cached units, the result files and their
statistics, atomic IO. Imports mtkd.kd and mtkd.data below it, never mtkd.report or mtkd.exec."""
