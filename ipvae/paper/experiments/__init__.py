"""The six experiments of the comparison; each module has NAME, TITLE, run(ctx) -> dict and
markdown(result, figure_prefix) -> str.  EXPERIMENTS is the one name -> module table."""

from ipvae.paper.experiments import convergence, features, mnist, natural, novel, rotation

EXPERIMENTS = {module.NAME: module for module in (mnist, natural, convergence, rotation, novel, features)}
