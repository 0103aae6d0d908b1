"""ffdebug: TensorBoard traces of FF layers' activations and goodness (a plugin)."""
