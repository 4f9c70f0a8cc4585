"""The KD maths: losses, fusion, the training loop, CPU kernels and devices.

torch (and numpy) only: no pandas, no run folders, nothing above this layer.
"""
