"""Applications on the programming interface: training on shares and models. They take a typed Context."""
