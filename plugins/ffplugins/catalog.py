"""The built-in plugins' registrations: each plugin's components, by reference.

Each class below is one built-in plugin, named by an entry point of the ``fflib`` group in
the root ``pyproject.toml`` (``ffnet = "ffplugins.catalog:ffnet"``). It registers its
components as references (``"ffplugins.ffnet:ffnet"``) with their one-line descriptions,
so loading the plugins imports neither torch nor the components' code: ``ff list-plugins``,
``ff --help`` and shell completion stay fast, and a component's module is imported the
first time it is built. A test keeps each description equal to its factory's docstring.
"""

from __future__ import annotations

from ffcore.hookspecs import Register, hookimpl


class goodness:  # a plugin object, named like its entry point
    """Goodness functions."""

    @staticmethod
    @hookimpl
    def fflib_register_goodness(register: Register) -> None:
        module = "ffplugins.goodness"
        register(
            "sum-squares",
            f"{module}:sum_squares",
            description="Sum of squared activities (Hinton); default threshold: the layer width.",
            aliases=["sum-of-squares"],
        )
        register(
            "mean-squares",
            f"{module}:mean_squares",
            description="Mean of squared activities (the original FFLib); default threshold 2.",
            aliases=["mean-of-squares"],
        )
        register(
            "neg-sum-squares",
            f"{module}:neg_sum_squares",
            description="Negative sum of squares: low activity marks positive data.",
        )
        register(
            "neg-mean-squares",
            f"{module}:neg_mean_squares",
            description="Negative mean of squares: low activity marks positive data.",
        )


class losses:
    """FF losses."""

    @staticmethod
    @hookimpl
    def fflib_register_losses(register: Register) -> None:
        register(
            "softplus-threshold",
            "ffplugins.losses:softplus_threshold",
            description="Hinton's loss: positive goodness above the threshold, negative below.",
            aliases=["hinton"],
        )
        register(
            "symba",
            "ffplugins.losses:symba",
            description=(
                "SymBa (Lee & Song 2023): separate positive from negative goodness, "
                "no threshold."
            ),
        )
        register(
            "softmax",
            "ffplugins.losses:softmax",
            description=(
                "Cross-entropy over each sample's positive and own negatives' goodness "
                "(scaled by alpha)."
            ),
        )


class ffdense:
    """The fully connected FF layer."""

    @staticmethod
    @hookimpl
    def fflib_register_layers(register: Register) -> None:
        register(
            "ffdense",
            "ffplugins.dense:ffdense",
            description="Fully connected FF layer: act(W·x/‖x‖ + b) with its own optimizer.",
            aliases=["fflinear"],
        )


class ffrecurrent:
    """The recurrent FF layer."""

    @staticmethod
    @hookimpl
    def fflib_register_layers(register: Register) -> None:
        register(
            "ffrecurrent",
            "ffplugins.recurrent:ffrecurrent",
            description=(
                "Recurrent FF layer: beta·act(W_fw·below + W_bw·above + b) + (1-beta)·previous."
            ),
            aliases=["ffrecurrentlayer"],
        )


class ffnet:
    """FFNet."""

    @staticmethod
    @hookimpl
    def fflib_register_models(register: Register) -> None:
        register(
            "ffnet",
            "ffplugins.ffnet:ffnet",
            description=(
                "Stack of FF layers, label one-hot appended to the input, TryAll prediction."
            ),
        )


class ffc:
    """FF+C."""

    @staticmethod
    @hookimpl
    def fflib_register_models(register: Register) -> None:
        register(
            "ffc",
            "ffplugins.ffc:ffc",
            description=(
                "FF+C: FF layers, then a linear classifier on their activations (neutral label)."
            ),
            aliases=["ff-c"],
        )


class ffrnn:
    """FFRNN."""

    @staticmethod
    @hookimpl
    def fflib_register_models(register: Register) -> None:
        register(
            "ffrnn",
            "ffplugins.ffrnn:ffrnn",
            description=(
                "Recurrent FF net: image below, label above, goodness averaged over test frames."
            ),
        )


class bp:
    """The backprop baseline."""

    @staticmethod
    @hookimpl
    def fflib_register_models(register: Register) -> None:
        register(
            "bp",
            "ffplugins.bp:bp",
            description="Backprop baseline: an MLP of the same widths trained with cross-entropy.",
            aliases=["backprop"],
        )


class classifier:
    """The classifier probe."""

    @staticmethod
    @hookimpl
    def fflib_register_probes(register: Register) -> None:
        register(
            "classifier",
            "ffplugins.classifier:classifier",
            description="Argmax of the model's own classifier logits (FF+C, backprop).",
        )


class tryall:
    """The TryAll probe."""

    @staticmethod
    @hookimpl
    def fflib_register_probes(register: Register) -> None:
        register(
            "tryall",
            "ffplugins.tryall:tryall",
            description="Try every label; predict the one whose total goodness is best.",
            aliases=["try-all"],
        )


class negatives:
    """Negative samplers."""

    @staticmethod
    @hookimpl
    def fflib_register_negatives(register: Register) -> None:
        module = "ffplugins.negatives"
        register(
            "random",
            f"{module}:random",
            description="The real input with a uniformly drawn wrong label.",
        )
        register(
            "inverse",
            f"{module}:inverse",
            description="The real input with every wrong label (num_classes - 1 negatives each).",
        )
        register(
            "hard",
            f"{module}:hard",
            description=(
                "The wrong label the network scores highest (sampled by softmax if "
                "temperature > 0)."
            ),
            aliases=["highest-incorrect"],
        )
        register(
            "neutral",
            f"{module}:neutral",
            description=(
                "Wrong labels drawn from the classifier read-out's neutral-label pass (Hinton's)."
            ),
            aliases=["neutral-pass"],
        )


class datasets:
    """Built-in data sets: digits and xor (embedded), mnist, fashion-mnist, cifar10."""

    @staticmethod
    @hookimpl
    def fflib_register_datasets(register: Register) -> None:
        embedded, vision = "ffplugins.datasets.embedded", "ffplugins.datasets.vision"
        register(
            "digits",
            f"{embedded}:digits",
            description=(
                "1,797 real 8x8 handwritten digits (scikit-learn's copy of UCI's), embedded."
            ),
        )
        register(
            "xor",
            f"{embedded}:xor",
            description=(
                "Two noisy inputs near {-1, +1}; the label is their XOR (needs a hidden layer)."
            ),
        )
        register(
            "mnist",
            f"{vision}:mnist",
            description="MNIST handwritten digits (28x28, 60k/10k) via torchvision.",
        )
        register(
            "fashion-mnist",
            f"{vision}:fashion_mnist",
            description=(
                "Fashion-MNIST (28x28, 60k/10k); also found in Debian's dataset-fashion-mnist."
            ),
        )
        register(
            "cifar10",
            f"{vision}:cifar10",
            description="CIFAR-10 (3x32x32, 50k/10k) via torchvision.",
            aliases=["cifar-10"],
        )
