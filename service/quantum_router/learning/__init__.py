"""Offline learning for the router: datasets, a bandit environment, RLlib DQN training, export, evaluation.

Everything here may import numpy; Ray, torch, gymnasium and matplotlib are imported only by the modules
that need them (``env``, ``train``, ``export``, ``plot``), so the service never pays for them.
"""
