"""What a study is made of: the task registry and its splits (embedded, GLUE, custom files), the model
and metric registries, and the PyPI archives they come from. Imports only mtkd.kd below it."""
