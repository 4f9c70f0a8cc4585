"""mtkd: multi-teacher vs single-teacher knowledge distillation for text classifiers."""
__version__ = "0.1.0"
