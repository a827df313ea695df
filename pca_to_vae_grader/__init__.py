"""The grader of the book's exercises (see its README.md and book/exercises/instructors.md).

In a notebook: ``check = Checker("gaussians")``, then ``check("kl_gauss")`` or ``check()``
(:mod:`pca_to_vae_grader.notebook`). This file stays free of imports: the sandbox's worker imports the package too.
"""


def __getattr__(name):
    if name == "Checker":
        from pca_to_vae_grader.notebook import Checker

        return Checker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
