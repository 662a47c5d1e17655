"""excavation_sim: the variable-resolution excavation simulator on Newton (batched env, depth camera,
scripted scoop, scene picture CLI) and the batched-env interface the trainer uses."""

__version__ = "0.1.0"
