"""The read side: a finished run's files, the analyses, figures and tables of the notebooks, the explorer.
Imports the layers below it (kd, data, study), never mtkd.exec."""
