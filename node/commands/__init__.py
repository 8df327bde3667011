"""Sub-commands of `gradswarm` that live in modules of their own."""
