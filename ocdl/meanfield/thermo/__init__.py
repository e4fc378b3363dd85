"""Learning thermodynamics (seed: Vanchurin, *The world as a neural network*, §2–6), computed:
partition function of the hidden variables (:mod:`.partition`), training and the laws of learning
(:mod:`.learning`), the Langevin ensemble of networks and eq. (20) (:mod:`.ensemble`), the
action's equations (:mod:`.action`), the ``ocdl meanfield thermo`` study (:mod:`.study`)."""
