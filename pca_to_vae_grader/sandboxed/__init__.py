"""What runs inside the sandbox, as the sandbox user: the worker and the modules it imports.

``worker`` runs the submission and answers calls; ``guard`` is its audit hook; ``submission`` reads a
notebook into the statements to run; ``codec`` carries values as JSON. The grader copies these files alone
into a private folder for each grading (:func:`pca_to_vae_grader.sandbox.runtime`); nothing else of the
grader is importable there.
"""
