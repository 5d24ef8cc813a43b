"""`ipvae paper` (alias `ipvae bench`): the paper's experiments in one harness, and the generated results report.

One command per experiment (``ipvae paper NAME``), each writing ``NAME.json``, PNG figures and
``NAME.md`` into ``RESULTS/NAME/``; models are trained once into ``RESULTS/models/`` and reused (an
interrupted training run resumes). ``ipvae paper report`` turns the JSON into one Markdown report.
The models compared are the entries of :data:`ipvae.paper.zoo.MODELS`; the budget is
:mod:`ipvae.paper.budget`.
"""
