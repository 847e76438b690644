"""Train the routing Q-network with Ray RLlib DQN (new API stack, torch) and export it as a ``Policy``.

Settings are chosen for a contextual bandit on a small CPU machine (see ../shared/notes/rllib.md):
episodes are one step, so the DQN target is the reward itself and the target network, double Q and n-step
returns only cost time; long rollout fragments and several vectorised env copies amortise RLlib's
per-episode overhead; a plain episode buffer is cheaper than the prioritised default.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from quantum_router.features import FeatureSpec
from quantum_router.learning.env import RoutingBanditEnv, env_config_for
from quantum_router.learning.experience import (
    DEFAULT_PRIOR_LABELS,
    LoggedExperience,
    feature_matrix,
    problem_from_log,
)
from quantum_router.learning.export import policy_from_state_dict
from quantum_router.learning.prior import believed_quality
from quantum_router.learning.problem import Problem
from quantum_router.learning.reward_model import (
    REWARDS,
    fitted_problem,
    smoothed_problem,
    text_scored_problem,
)
from quantum_router.policy import Policy
from quantum_router.text_model import TextModel


@dataclass
class TrainConfig:
    """Knobs of one training run; defaults are tuned for 2 CPU cores."""

    steps: int = 20_000  # env steps (= experiences) sampled
    cost_weight: float = 0.1  # reward penalty, quality units per normalised cost (1.0 = most expensive)
    hidden: list[int] = field(default_factory=lambda: [64])
    activation: str = "relu"
    # Decays linearly to a tenth by the last step, so late updates average out noise. On a smooth reward
    # (text or ridge, the defaults) 3e-3 fits the reward's strong-minus-weak gap on the MMLU training rows
    # with RMSE 0.0055 against 0.022 for 1e-3 (docs/routing.md); for the noisy outcome reward try 1e-3.
    lr: float = 3e-3
    batch_size: int = 128
    rollout_fragment_length: int = 64
    num_envs_per_env_runner: int = 4
    # Replayed / sampled experiences. Sampling costs about 1 ms of RLlib overhead per one-step episode, an
    # update of 128 about 10 ms, so re-using each experience several times is the cheap way to learn more.
    training_intensity: float = 8.0
    buffer_capacity: int = 100_000
    epsilon_start: float = 1.0
    # Exploration stays high: the goal is an accurate Q for every model (the knob re-ranks them later),
    # not the online reward while training.
    epsilon_end: float = 0.5
    # What the env pays for quality: "outcome" is each row's observed outcome of the chosen model; "ridge"
    # is a blend of it (reward_outcome_weight) with a per-model ridge regression (alpha reward_ridge) fitted
    # on the training problem; "text" blends it with the text model's cross-fitted scores (a dataset's, or
    # a log's whose every row was refitted: learning/text_refit.py).
    # Both are lower-variance targets (see learning/reward_model.py): on MMLU ridge lifted held-out APGR
    # from 0.63-0.65 to about 0.70, text to about 0.73 (docs/routing.md). They limit the policy to what the
    # reward model captures; use "outcome" when the rule is non-linear in the features. "fitted" is the
    # experience log's own reward model (the direct method's fill-in, shrunk toward a policy's belief); a
    # second ridge on top would shrink it toward each model's average again. "auto" is "text"
    # when the problem has cross-fitted text scores, else "fitted" for a log problem, else "ridge".
    reward: str = "auto"
    reward_ridge: float = 30.0
    reward_outcome_weight: float = 0.0
    # train --from-log, where a policy's belief is the reward model's prior: how many labels of a model on a
    # task type that belief is worth (experience.DEFAULT_PRIOR_LABELS explains the default). The gate too.
    prior_labels: float = DEFAULT_PRIOR_LABELS
    num_env_runners: int = 0  # 0 samples in the driver's local runner, cheapest on 2 cores
    num_learners: int = 0  # 0 updates in the driver; >0 starts learner actors
    address: str | None = None  # None starts a local Ray; else e.g. "auto" or "ray://head:10001"
    num_cpus: int = 2  # only for a local Ray
    seed: int = 0
    version: str | None = None


@dataclass
class TrainResult:
    """The exported policy plus what the run cost."""

    policy: Policy
    seconds_total: float
    seconds_training: float
    env_steps: int
    learner_updates: int
    learner_update_ms: float  # mean time of one learner update (one batch)
    timers: dict[str, float] = field(default_factory=dict)

    @property
    def ms_per_experience(self) -> float:
        """Learner update time per experience in a batch."""
        batch = int(self.policy.info.get("train_config", {}).get("batch_size", 1))
        return self.learner_update_ms / max(batch, 1)

    @property
    def experiences_per_second(self) -> float:
        """Env steps sampled (with the updates they pay for) per wall-clock second of ``train()``."""
        return self.env_steps / self.seconds_training if self.seconds_training > 0 else 0.0


def resolved_reward(problem: Problem, config: TrainConfig) -> str:
    """The reward ``config.reward`` means for ``problem`` ("auto" picks text, fitted or ridge)."""
    if config.reward not in REWARDS:
        raise ValueError(f"unknown reward {config.reward!r}: use one of {', '.join(REWARDS)}")
    if config.reward == "auto":
        if problem.text_cross_fitted:
            return "text"
        return "fitted" if problem.fitted_quality is not None else "ridge"
    return config.reward


def reward_problem(problem: Problem, config: TrainConfig) -> Problem:
    """The problem whose quality the env pays: as given, or smoothed by a reward model."""
    reward = resolved_reward(problem, config)
    if reward == "text":
        return text_scored_problem(problem, config.reward_outcome_weight)
    if reward == "ridge":
        return smoothed_problem(problem, config.reward_ridge, config.reward_outcome_weight)
    if reward == "fitted":
        return fitted_problem(problem, config.reward_outcome_weight)
    return problem


def build_config(problem: Problem, config: TrainConfig) -> Any:
    """The RLlib ``DQNConfig`` for ``problem``."""
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    env_config = env_config_for(reward_problem(problem, config), config.cost_weight)
    env_config["seed"] = config.seed
    return (
        DQNConfig()  # type: ignore[no-untyped-call]
        .framework("torch")
        .environment(RoutingBanditEnv, env_config=env_config)
        .env_runners(
            num_env_runners=config.num_env_runners,
            num_envs_per_env_runner=config.num_envs_per_env_runner,
            rollout_fragment_length=config.rollout_fragment_length,
            # Vector envs would otherwise wrap each copy in a subprocess; in-process is faster here.
            gym_env_vectorize_mode="sync",
        )
        .learners(num_learners=config.num_learners)
        .training(
            lr=[[0, config.lr], [max(1, config.steps), config.lr / 10.0]],
            train_batch_size_per_learner=config.batch_size,
            training_intensity=config.training_intensity,
            num_steps_sampled_before_learning_starts=config.batch_size,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": config.buffer_capacity},
            epsilon=[(0, config.epsilon_start), (max(1, config.steps // 2), config.epsilon_end)],
            # One-step episodes: the target is the reward, so these only cost time.
            double_q=False,
            n_step=1,
            target_network_update_freq=10**12,
            dueling=True,
            td_error_loss_fn="mse",
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=list(config.hidden),
                fcnet_activation=config.activation,
                head_fcnet_hiddens=[],
                head_fcnet_activation=config.activation,
            )
        )
        .reporting(
            min_sample_timesteps_per_iteration=max(1000, config.steps // 20),
            metrics_num_episodes_for_smoothing=100,
        )
        .debugging(seed=config.seed, log_level="ERROR")
    )


def _ray_init(config: TrainConfig) -> bool:
    """Start or join Ray; True when this call started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if config.address:
        ray.init(address=config.address, log_to_driver=False)
    else:
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def _timer_means(result: dict[str, Any]) -> dict[str, float]:
    timers = result.get("timers", {})
    return {str(k): float(v) for k, v in timers.items() if isinstance(v, int | float)}


def train_policy(
    problem: Problem, config: TrainConfig | None = None, info: dict[str, Any] | None = None
) -> TrainResult:
    """Train DQN on ``problem`` until ``config.steps`` experiences are sampled and export the policy."""
    import ray

    config = config or TrainConfig()
    started = time.perf_counter()
    owns_ray = _ray_init(config)
    try:
        algo = build_config(problem, config).build_algo()
        try:
            train_started = time.perf_counter()
            env_steps = 0
            updates = 0
            timers: dict[str, float] = {}
            update_ms: list[float] = []
            while env_steps < config.steps:
                result = algo.train()
                env_steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
                learner = result.get("learners", {}).get("__all_modules__", {})
                updates = int(learner.get("num_module_steps_trained_lifetime", 0)) // max(
                    config.batch_size, 1
                )
                timers = _timer_means(result)
                if "learner_update_timer" in timers:
                    update_ms.append(timers["learner_update_timer"] * 1000.0)
            seconds_training = time.perf_counter() - train_started
            state = algo.get_module().state_dict()
        finally:
            algo.stop()
    finally:
        if owns_ray:
            ray.shutdown()
    seconds_total = time.perf_counter() - started
    top_cost = max(problem.costs_per_1k) if problem.costs_per_1k else 0.0
    version = config.version or "dqn-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    policy = policy_from_state_dict(
        state,
        version=version,
        models=problem.models,
        feature_spec=problem.feature_spec,
        activation=config.activation,
        # The reward charged cost_weight per *normalised* cost; in the catalog's USD-per-1k units that is
        # cost_weight / top_cost, which keeps routing.adjusted_scores' knob arithmetic consistent.
        cost_weight=config.cost_weight / top_cost if top_cost > 0 else 0.0,
        model_costs=list(problem.costs_per_1k),
        text_model=problem.text_model,
        info={
            **problem.info,
            **(info or {}),
            "trainer": "ray.rllib DQN (new API stack, torch)",
            "env_steps": env_steps,
            "learner_updates": updates,
            "train_seconds": round(seconds_training, 3),
            "total_seconds": round(seconds_total, 3),
            "reward_cost_weight": config.cost_weight,
            "reward": resolved_reward(problem, config),
            "train_config": {k: v for k, v in asdict(config).items() if k != "address"},
        },
    )
    return TrainResult(
        policy=policy,
        seconds_total=seconds_total,
        seconds_training=seconds_training,
        env_steps=env_steps,
        learner_updates=updates,
        learner_update_ms=float(np.mean(update_ms)) if update_ms else 0.0,
        timers=timers,
    )


def train_from_log(
    experiences: list[LoggedExperience],
    feature_spec: FeatureSpec,
    models: list[str],
    model_costs_per_1k: list[float],
    config: TrainConfig | None = None,
    ridge: float = 1.0,
    text_model: TextModel | None = None,
    prior: Policy | None = None,
    info: dict[str, Any] | None = None,
    text_cross_fitted: bool = False,
) -> TrainResult:
    """Train from the experience log: a reward model fills in the models not taken (direct method).

    ``text_model`` is the one whose scores end the rows' features when the feature spec has text scores:
    the serving policy's, or its refit whose scores replaced them (``text_refit.refit_log``). The new
    policy carries it. ``prior`` is a policy with the same models and feature spec (``train --from-log``:
    the root policy, or the served one): the reward model then shrinks toward what it believes, worth
    ``config.prior_labels`` labels per model and task type, instead of toward each model's average
    (``ridge`` applies only without a prior). ``info`` is added to the policy's. ``text_cross_fitted`` says
    that every row's text scores are cross-fitted on the log's outcomes, so ``reward="auto"`` (and "text")
    pays them.
    """
    config = config or TrainConfig()
    believed = None
    if prior is not None:
        believed = believed_quality(prior, feature_matrix(experiences, feature_spec.dim))
    problem = problem_from_log(
        experiences,
        feature_spec,
        models,
        model_costs_per_1k,
        ridge=ridge if prior is None else config.prior_labels,
        prior=believed,
    )
    problem.text_model = text_model
    problem.text_cross_fitted = text_cross_fitted
    return train_policy(
        problem, config, info={"source": "experience log", "experiences": len(experiences), **(info or {})}
    )
