"""Typed configuration of PPO + PRPD training: one dataclass tree.

``TrainConfig`` is the root. Every field is documented next to its default; the defaults are the
paper's (PRPD, arXiv 2412.07477, Table I) where the paper gives a value, otherwise rsl_rl's PPO
defaults. The dataclasses are the schema of OmegaConf structured configs: loading YAML
(``TrainConfig.from_yaml``), ``a.b.c=value`` overrides (``apply_overrides``; the CLI's ``--set``,
values parsed as YAML), merges and YAML dumps go through OmegaConf, whose type errors become
``ConfigError``s naming the key and the expected type. ``validate()`` checks ranges and choices.

Loss weights (see ``training/docs/prpd.md``):
    c1 = ppo.value_loss_coef, c2 = ppo.entropy_coef, c3 = prpd.alpha_0 (distillation),
    c4 = ppo.kl_penalty_coef (initial beta of the optional adaptive KL penalty).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, OmegaConfBaseException

# The paper's schedule (Table I): 70 -> 10 mm in 10 mm steps.
PAPER_RESOLUTIONS_MM: tuple[float, ...] = (70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0)

ENV_NAMES = ("excavation", "toy", "point")
ALPHA_MODES = ("dynamic", "fixed")
ALPHA_ESTIMATORS = ("cpd", "win_rate")
DISTILL_LOSSES = ("kl", "mse")
Q_TARGETS = ("lambda_return", "sarsa")
LR_SCHEDULES = ("adaptive", "fixed")
ACTIVATIONS = ("elu", "selu", "relu", "lrelu", "tanh", "gelu", "swish", "mish")  # rsl_rl's names


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the field."""


@dataclass
class EnvConfig:
    """Which batched env the factory builds, and how many copies per iteration."""

    name: str = "excavation"
    """``excavation`` (the Newton simulator, ``env.excavation_env.make_env``), ``toy`` (a contract-shaped
    toy digging task, no simulator) or ``point`` (point reaching, for tests)."""
    num_envs: int = 128
    """Parallel envs = episodes per iteration (paper Table I: 128)."""
    randomize: bool = True
    """Domain randomisation during training (paper Table II ranges for ``excavation``)."""
    options: dict = field(default_factory=dict)
    """Extra env settings. ``excavation``: dotted overrides of ``ExcavationEnvConfig`` (e.g.
    ``physics.substeps: 4``); ``toy``/``point``: keyword arguments of the toy env's constructor."""


@dataclass
class PolicyConfig:
    """Actor-critic MLPs with a state-independent Gaussian policy in normalised action space
    ([-1, 1] maps onto the env's action bounds; samples are clipped there before they reach the env)."""

    actor_hidden_dims: tuple[int, ...] = (256, 128, 64)
    critic_hidden_dims: tuple[int, ...] = (256, 128, 64)
    activation: str = "elu"
    init_noise_std: float = 1.0
    min_noise_std: float = 1e-3
    """Lower clamp on the policy's std, so log-probabilities and the KL stay finite."""
    normalize_observations: bool = True
    """Running mean/std normalisation of observations (rsl_rl's EmpiricalNormalization), baked into exports."""


@dataclass
class PPOConfig:
    """Clipped PPO with GAE (rsl_rl's defaults unless noted)."""

    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    """Paper Table I: 0.2."""
    gamma: float = 0.99
    """Paper Table I: 0.99."""
    lam: float = 0.95
    value_loss_coef: float = 1.0
    """c1: weight of the value loss."""
    use_clipped_value_loss: bool = False
    """rsl_rl clips the value's change per update to +-clip_param around the collection-time value.
    Our returns are tens (shaped reward up to ~4 per step plus a +20 success bonus), so with clipping
    the critic moves 0.2 per iteration: after 10 critic warm-up iterations its loss was still ~370,
    without clipping it fell to ~60 (50 -> 40 mm, 32 envs)."""
    entropy_coef: float = 0.005
    """c2: weight of the entropy bonus."""
    learning_rate: float = 1e-3
    """Initial learning rate (the adaptive schedule moves it within [1e-5, 1e-2])."""
    schedule: str = "adaptive"
    """``adaptive``: learning rate adapted so the policy's KL per minibatch stays near ``desired_kl``
    (rsl_rl's rule: /1.5 above 2x, *1.5 below 0.5x); ``fixed``: constant learning rate."""
    desired_kl: float = 0.01
    kl_penalty_coef: float = 0.0
    """c4: initial beta of an adaptive KL penalty beta * KL(pi_old || pi) (PPO-penalty, Schulman et al.
    2017). The paper's Table I lists "PPO KL penalty: adaptive" without saying which; 0 disables it and
    leaves the adaptive learning-rate schedule as the KL control."""
    kl_penalty_adaptive: bool = True
    """Double beta when the iteration's KL > 1.5 desired_kl, halve it below desired_kl / 1.5."""
    critic_learning_rate: float | None = 1e-3
    """Fixed learning rate of the critic; None: the critic follows the actor's adaptive rate (rsl_rl).
    The KL rule measures the policy's step, which says nothing about how fast the value may move."""
    max_grad_norm: float = 1.0
    clip_grad_per_network: bool = True
    """Clip the actor's and the critic's gradient norms separately (rsl_rl clips them jointly, so the
    size of the value loss also scales the actor's gradient)."""
    normalize_advantages: bool = True


@dataclass
class QConfig:
    """Auxiliary Q(s, a) of conservative transfer, trained on the current resolution's rollouts."""

    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "elu"
    learning_rate: float = 1e-3
    num_epochs: int = 5
    """Passes over each rollout, done before the policy update so alpha reflects the current data."""
    num_mini_batches: int = 4
    target: str = "lambda_return"
    """``lambda_return``: regress Q(s_t, a_t) on the GAE(lambda) return of the rollout (low variance,
    on-policy); ``sarsa``: TD(0) target r_t + gamma Q'(s_t+1, a_t+1), Q' frozen at the iteration start."""
    reset_each_stage: bool = True
    """A fresh Q for every resolution (the paper's algorithm box creates Q per resolution)."""


@dataclass
class PRPDConfig:
    """Progressive resolution schedule and conservative policy transfer."""

    resolutions_mm: tuple[float, ...] = PAPER_RESOLUTIONS_MM
    """Resolutions, coarse to fine (strictly decreasing). One entry = fixed-resolution PPO;
    ``(70, 10)`` = direct coarse-to-fine transfer."""
    success_threshold: float = 0.95
    """tau: advance when the training success rate at the current resolution reaches this."""
    max_iterations_per_stage: int = 400
    """I: advance after at most this many iterations at one resolution."""
    finish_on_threshold: bool = True
    """Whether reaching tau at the last resolution ends training (False: train it to the cap)."""
    min_episodes_for_success: int = 1
    """An iteration whose rollout finished fewer episodes than this has no (logged) success rate."""
    advance_window_episodes: int = 128
    """tau is judged on the last this-many rollout episodes finished at the current resolution (the
    paper's iteration is 128 episodes), whatever the env count and iteration length, so every method
    advances by the same rule; a stage cannot end on the threshold before that many have finished there
    (a rate from 32 episodes has a 95 % interval of +-0.15 at 0.8). The window empties at each advance."""
    alpha_mode: str = "dynamic"
    """``dynamic``: alpha from the auxiliary Q; ``fixed``: alpha = ``alpha_fixed`` (ablations 0 and 1)."""
    alpha_fixed: float = 1.0
    alpha_estimator: str = "win_rate"
    """``win_rate``: alpha = fraction of states where A > 0; ``cpd``: alpha = clip(mean(A) / max|A| + 1,
    0, 1) (Cyclic Policy Distillation). A = Q(s, a_teacher) - Q(s, a_student). ``cpd`` is 1 whenever
    Q cannot tell the two actions apart (mean A ~ 0): measured, it sat at 0.95-1.0 for whole stages
    and held the student on a teacher it had to improve on; ``win_rate`` is 0.5 there."""
    distill_std: bool = False
    """Whether the mixture target also interpolates the std toward the teacher's. False: only the
    mean is distilled (the target keeps the student's own std), so PPO can still lower its exploration
    noise; with True and alpha ~ 1 the student's std was held at the teacher's for the whole stage."""
    alpha_0: float = 2.0
    """c3: scale of the distillation term (paper Table I: alpha_0 = 2)."""
    distill_loss: str = "kl"
    """``kl``: KL(pi_mix || pi_student); ``mse``: squared distance of the means to the mixture mean."""
    reset_optimizer_on_advance: bool = True
    """A new optimiser at each resolution, as the paper creates new networks and copies the parameters;
    False keeps Adam's moments across resolutions."""
    keep_learning_rate_on_advance: bool = True
    """With a new optimiser, start the actor at the learning rate the adaptive rule had reached, not at
    ppo.learning_rate: restarting at 1e-3 moved the transferred policy by a KL of ~0.5 in the first
    update of each stage (H100 run, std 0.1)."""


@dataclass
class RunnerConfig:
    """Rollouts, logging, checkpoints."""

    seed: int = 0
    device: str = "cpu"
    steps_per_iteration: int = 128
    """Env steps per env per iteration (paper Table I: 128 = one episode)."""
    reset_every_iteration: bool = True
    """Reset all envs at each iteration's start, so an iteration is E whole episodes as in the paper.
    The training success rate then counts each env's first episode of the iteration, and one still
    running at the iteration's end as a failure (so keep ``steps_per_iteration`` >= the env's episode
    length). False: envs run on across iterations and every episode that ends counts."""
    max_iterations: int = 0
    """Stop after this many iterations in total (0: when the schedule finishes)."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many iterations (also at every stage change, at the end and on
    interrupt)."""
    log_dir: str = "runs/prpd"
    tensorboard: bool = True
    progress: bool = True
    torch_threads: int = 0
    """``torch.set_num_threads`` (0: leave torch's default)."""


@dataclass
class DemoConfig:
    """Optional warm start: behaviour cloning of the scripted scoop before the first iteration."""

    steps: int = 0
    """Control steps of the scripted scoop to record (all envs, randomisation as in ``env``); 0 = off."""
    epochs: int = 30
    learning_rate: float = 1e-3
    batch_size: int = 512
    init_noise_std: float = 0.3
    """Exploration std (normalised action space) after cloning."""
    dagger_rounds: int = 0
    """DAgger rounds after the first fit: the cloned policy drives for ``steps / 2`` steps while the
    scripted scoop, run alongside as an observer, labels what it would have done; refit on all data.
    Plain cloning of the scripted scoop scored 0-9 % at 70 mm (its small errors compound into states
    the demonstrations never visit); one round gave 75-78 %. More rounds collapsed to ~0 %: the
    scripted scoop is a phase machine, and on long student trajectories its phase drifts out of step
    with the state, so its labels start to contradict each other. Use 1."""
    critic_warmup_iterations: int = 0
    """After the warm start, iterations that train only the critic (the actor is left as cloned).
    Without it the first PPO updates, on advantages from an untrained critic, undo the cloning."""
    ppo_learning_rate: float = 1e-5
    """The actor's learning rate when PPO takes over the cloned policy; the adaptive rule raises it
    x1.5 per minibatch while the policy KL stays below desired_kl / 2. Starting at ppo.learning_rate
    (1e-3, a from-scratch value for std 1) the first update moved the cloned policy by a KL of 0.3-0.8
    (32 envs) to 12 (128 envs) before the rule could react: Adam's first steps move every weight by
    about the full learning rate, and at std 0.1 a small shift of the mean is a large KL."""


@dataclass
class ViewConfig:
    """What ``excavation-train train --view`` logs to a Rerun recording in the run folder (docs/view.md).
    Without ``--view`` none of this is used and Rerun is never imported."""

    episodes: int = 2
    """Evaluation episodes (deterministic mean action) logged at each stage change and at the end, at the
    resolution the policy just trained at: each in its own world of an env built for them, so training's
    envs, random streams and metrics are untouched."""
    randomize: bool = False
    """Domain randomisation of those episodes (off: the nominal scene, as ``evaluate`` defaults to)."""
    soil_every: int = 4
    """Log the soil every this many control steps of an episode (the bucket and the rock every step):
    the soil is the bulk of a frame."""
    max_soil_points: int = 20000
    """Soil particles per logged frame at most, evenly strided; the 5 mm bed has about 15 000 per world."""
    file: str = "view.rrd"
    """Recording file name in the run folder (replay: ``rerun RUN_DIR/view.rrd``)."""


@dataclass
class TrainConfig:
    """Root of the training configuration."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    q: QConfig = field(default_factory=QConfig)
    prpd: PRPDConfig = field(default_factory=PRPDConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    view: ViewConfig = field(default_factory=ViewConfig)

    # -------------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        """Plain dicts and lists (YAML/JSON-safe), as stored in checkpoints."""
        return OmegaConf.to_container(_schema(self))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, (dict, DictConfig)):
            raise ConfigError(f"a config must be a mapping, got {data!r}")
        return _merge_into(cls(), data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = OmegaConf.load(path)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
        if not isinstance(data, DictConfig):
            raise ConfigError(f"config file {path} must hold a mapping at the top level, got a list")
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = OmegaConf.to_yaml(_schema(self))
        if path is not None:
            Path(path).write_text(text)
        return text

    def apply_overrides(self, overrides: list[str] | dict[str, Any]) -> TrainConfig:
        """Apply ``"a.b=value"`` strings (values parsed as YAML) or a ``{dotted: value}`` dict, in place."""
        if isinstance(overrides, dict):
            items = list(overrides.items())
        else:
            items = []
            for text in overrides:
                key, eq, raw = text.partition("=")
                if not eq:
                    raise ConfigError(f"override {text!r} must look like key.path=value")
                key = _key(key.strip())
                try:  # OmegaConf parses the value as YAML; ${...} interpolations resolve at the merge
                    value = OmegaConf.to_container(OmegaConf.from_dotlist([f"{key}={raw}"]))
                except yaml.YAMLError as exc:
                    raise ConfigError(f"override {key}: cannot parse value {raw!r}: {_yaml_problem(exc)}") from None
                for name in key.split("."):
                    value = value[name]
                items.append((key, value))
        schema = _schema(self)
        return _merge_into(self, *(_patch(schema, key, value) for key, value in items))

    # -------------------------------------------------------------- checks
    def validate(self) -> TrainConfig:
        e, p, o, q, s, r = self.env, self.policy, self.ppo, self.q, self.prpd, self.runner
        _choice("env.name", e.name, ENV_NAMES)
        _positive_int("env.num_envs", e.num_envs)
        _hidden("policy.actor_hidden_dims", p.actor_hidden_dims)
        _hidden("policy.critic_hidden_dims", p.critic_hidden_dims)
        _choice("policy.activation", p.activation, ACTIVATIONS)
        _positive("policy.init_noise_std", p.init_noise_std)
        _positive("policy.min_noise_std", p.min_noise_std)
        if p.min_noise_std > p.init_noise_std:
            raise ConfigError(
                f"policy.min_noise_std ({p.min_noise_std}) must not exceed policy.init_noise_std ({p.init_noise_std})"
            )
        _positive_int("ppo.num_learning_epochs", o.num_learning_epochs)
        _positive_int("ppo.num_mini_batches", o.num_mini_batches)
        _in_range("ppo.clip_param", o.clip_param, 0.0, 1.0, open_low=True)
        _in_range("ppo.gamma", o.gamma, 0.0, 1.0)
        _in_range("ppo.lam", o.lam, 0.0, 1.0)
        _non_negative("ppo.value_loss_coef", o.value_loss_coef)
        _non_negative("ppo.entropy_coef", o.entropy_coef)
        _positive("ppo.learning_rate", o.learning_rate)
        _positive("demo.ppo_learning_rate", self.demo.ppo_learning_rate)
        if o.critic_learning_rate is not None:
            _positive("ppo.critic_learning_rate", o.critic_learning_rate)
        _choice("ppo.schedule", o.schedule, LR_SCHEDULES)
        _positive("ppo.desired_kl", o.desired_kl)
        _non_negative("ppo.kl_penalty_coef", o.kl_penalty_coef)
        _positive("ppo.max_grad_norm", o.max_grad_norm)
        _hidden("q.hidden_dims", q.hidden_dims)
        _choice("q.activation", q.activation, ACTIVATIONS)
        _positive("q.learning_rate", q.learning_rate)
        _positive_int("q.num_epochs", q.num_epochs)
        _positive_int("q.num_mini_batches", q.num_mini_batches)
        _choice("q.target", q.target, Q_TARGETS)
        res = s.resolutions_mm
        if len(res) == 0:
            raise ConfigError("prpd.resolutions_mm must list at least one resolution (mm), got an empty list")
        for i, d in enumerate(res):
            if not (isinstance(d, (int, float)) and math.isfinite(d) and d > 0):
                raise ConfigError(f"prpd.resolutions_mm[{i}] must be a positive number of mm, got {d!r}")
        if any(b >= a for a, b in zip(res, res[1:])):
            raise ConfigError(
                f"prpd.resolutions_mm must be strictly decreasing (coarse to fine), got {list(res)}"
            )
        _in_range("prpd.success_threshold", s.success_threshold, 0.0, 1.0)
        _positive_int("prpd.max_iterations_per_stage", s.max_iterations_per_stage)
        _positive_int("prpd.min_episodes_for_success", s.min_episodes_for_success)
        _positive_int("prpd.advance_window_episodes", s.advance_window_episodes)
        _choice("prpd.alpha_mode", s.alpha_mode, ALPHA_MODES)
        _in_range("prpd.alpha_fixed", s.alpha_fixed, 0.0, 1.0)
        _choice("prpd.alpha_estimator", s.alpha_estimator, ALPHA_ESTIMATORS)
        _non_negative("prpd.alpha_0", s.alpha_0)
        _choice("prpd.distill_loss", s.distill_loss, DISTILL_LOSSES)
        _non_negative_int("runner.seed", r.seed)
        if not (r.device == "cpu" or r.device.startswith("cuda")):
            raise ConfigError(f"runner.device must be 'cpu' or 'cuda[:N]', got {r.device!r}")
        _positive_int("runner.steps_per_iteration", r.steps_per_iteration)
        _non_negative_int("runner.max_iterations", r.max_iterations)
        _positive_int("runner.checkpoint_every", r.checkpoint_every)
        _non_negative_int("runner.torch_threads", r.torch_threads)
        d = self.demo
        _non_negative_int("demo.steps", d.steps)
        _positive_int("demo.epochs", d.epochs)
        _positive_int("demo.batch_size", d.batch_size)
        _positive("demo.learning_rate", d.learning_rate)
        _positive("demo.init_noise_std", d.init_noise_std)
        _non_negative_int("demo.dagger_rounds", d.dagger_rounds)
        _non_negative_int("demo.critic_warmup_iterations", d.critic_warmup_iterations)
        v = self.view
        _positive_int("view.episodes", v.episodes)
        _positive_int("view.soil_every", v.soil_every)
        _positive_int("view.max_soil_points", v.max_soil_points)
        if not v.file.endswith(".rrd") or Path(v.file).name != v.file:
            raise ConfigError(f"view.file must be a file name ending in .rrd (it goes in the run folder), got {v.file!r}")
        if d.steps and e.name != "excavation":
            raise ConfigError(f"demo.steps > 0 needs env.name = 'excavation' (the scripted scoop drives that env), got {e.name!r}")
        batch = e.num_envs * r.steps_per_iteration
        for name, mb in (("ppo.num_mini_batches", o.num_mini_batches), ("q.num_mini_batches", q.num_mini_batches)):
            if mb > batch:
                raise ConfigError(
                    f"{name} ({mb}) must not exceed the samples per iteration, env.num_envs x "
                    f"runner.steps_per_iteration = {batch}"
                )
        return self


# ------------------------------------------------------------------ presets
def apply_preset(cfg: TrainConfig, name: str) -> TrainConfig:
    """Experiment presets (the paper's method and its baselines from the same code) and machine profiles.

    - ``prpd``: the paper: 70 -> 10 mm, dynamic alpha.
    - ``fixed``: fixed-resolution PPO at the finest resolution (set ``prpd.resolutions_mm=[d]`` for another d),
      trained to the iteration cap.
    - ``direct``: direct coarse-to-fine transfer, resolutions (70, 10).
    - ``alpha0`` / ``alpha1``: PRPD with alpha fixed at 0 / 1 (ablation).
    - ``paper``: 128 envs x 128 steps per iteration.
    - ``cpu``: a small profile for a CPU machine: 16 envs x 64 steps, smaller networks.
    """
    if name == "prpd":
        cfg.prpd.resolutions_mm = PAPER_RESOLUTIONS_MM
        cfg.prpd.alpha_mode = "dynamic"
    elif name == "fixed":
        cfg.prpd.resolutions_mm = (PAPER_RESOLUTIONS_MM[-1],)
        cfg.prpd.finish_on_threshold = False
    elif name == "direct":
        cfg.prpd.resolutions_mm = (PAPER_RESOLUTIONS_MM[0], PAPER_RESOLUTIONS_MM[-1])
    elif name == "alpha0":
        cfg.prpd.alpha_mode, cfg.prpd.alpha_fixed = "fixed", 0.0
    elif name == "alpha1":
        cfg.prpd.alpha_mode, cfg.prpd.alpha_fixed = "fixed", 1.0
    elif name == "paper":
        cfg.env.num_envs, cfg.runner.steps_per_iteration = 128, 128
    elif name == "cpu":
        cfg.env.num_envs, cfg.runner.steps_per_iteration = 16, 64
        cfg.policy.actor_hidden_dims = cfg.policy.critic_hidden_dims = (128, 64)
        cfg.q.hidden_dims = (128, 128)
    else:
        raise ConfigError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    return cfg


PRESETS = ("prpd", "fixed", "direct", "alpha0", "alpha1", "paper", "cpu")


# ------------------------------------------------------------------ OmegaConf plumbing
def set_dotted(root, dotted: str, value) -> None:
    """Set ``a.b.c`` on a dataclass tree (this one, or the simulator's ``ExcavationEnvConfig``) in place.

    OmegaConf converts ``value`` to the field's type (``"4"`` -> 4, ``"false"`` -> False) or refuses
    it; a list field also takes a scalar or a comma-separated string (``"64,64"``, ``"[70,10]"``).
    """
    _merge_into(root, _patch(_schema(root), dotted, value))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{getattr(exc, 'problem', None) or exc}" + (f" (column {mark.column + 1})" if mark else "")


_WHAT = {bool: ("a boolean (true/false)", "booleans"), int: ("an integer", "integers"),
         float: ("a number", "numbers"), str: ("a string", "strings")}


def _expected(typ) -> str:
    """What a field annotated ``typ`` takes, in words."""
    args = typing.get_args(typ)
    if type(None) in args:
        return f"{_expected(next(a for a in args if a is not type(None)))} or null"
    if typing.get_origin(typ) is tuple:
        items = _WHAT.get(args[0], ("", args[0].__name__))[1]
        return f"a list of {items}" if args[-1] is Ellipsis else f"a list of {len(args)} {items}"
    return _WHAT.get(typ, ("a mapping",))[0]


def _error(exc: OmegaConfBaseException, schema: DictConfig) -> ConfigError:
    """OmegaConf's exception -> a one-line ConfigError naming the full key and what it takes."""
    key, typ = exc.full_key, None
    if isinstance(exc, ConfigKeyError):
        parent = key.rpartition(".")[0]
        known = list((OmegaConf.select(schema, parent) if parent else schema).keys())
        return ConfigError(f"unknown config key {key!r}: {parent or 'the config root'} has {known}")
    if isinstance(exc, InterpolationResolutionError) or not key:
        pass
    elif isinstance(exc.key, int):  # a list item; ref_type is the list's annotation
        typ = (typing.get_args(exc.ref_type) or (None,))[0]
    elif dataclasses.is_dataclass(exc.object_type):
        typ = typing.get_type_hints(exc.object_type).get(exc.key)
    if typ is None:
        return ConfigError(f"{key or 'config'}: {str(exc.msg).splitlines()[0]}")
    value = OmegaConf.to_container(exc.value) if OmegaConf.is_config(exc.value) else exc.value
    return ConfigError(f"{key} must be {_expected(typ)}, got {value!r}")


def _schema(obj) -> DictConfig:
    """The OmegaConf structured config of a dataclass tree (type-checks its current values)."""
    try:
        return OmegaConf.structured(obj)
    except OmegaConfBaseException as exc:
        raise _error(exc, OmegaConf.structured(type(obj))) from None


def _key(dotted: str) -> str:
    if not all(dotted.split(".")) or "[" in dotted:
        raise ConfigError(f"config key {dotted!r} must be dotted names, like ppo.learning_rate")
    return dotted


def _patch(schema: DictConfig, dotted: str, value) -> DictConfig:
    """``{a: {b: {c: value}}}``; a scalar or a comma-separated string aimed at a list field becomes a list."""
    if isinstance(OmegaConf.select(schema, dotted, default=None, throw_on_resolution_failure=False), ListConfig):
        if isinstance(value, str):
            value = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
        elif value is not None and not isinstance(value, (list, tuple, ListConfig)):
            value = [value]
    patch = OmegaConf.create()
    OmegaConf.update(patch, _key(dotted), value, merge=False)
    return patch


def _check_sections(schema: DictConfig, patch: dict, prefix: str = "") -> None:
    """Name the key when a value would replace a whole section (OmegaConf's merge error does not)."""
    for key, value in patch.items():
        sub = schema[key] if isinstance(key, str) and key in schema else None
        if isinstance(sub, DictConfig) and isinstance(value, dict):
            _check_sections(sub, value, f"{prefix}{key}.")
        elif isinstance(sub, DictConfig):
            what = "a mapping" if OmegaConf.get_type(sub) is dict else f"a section of {list(sub.keys())}"
            raise ConfigError(f"{prefix}{key} must be {what}, not a value; got {value!r}")


def _merge_into(obj, *patches):
    """Merge ``patches`` onto the dataclass tree ``obj`` (updated in place) through OmegaConf."""
    schema = _schema(obj)
    try:
        for p in patches:
            _check_sections(schema, OmegaConf.to_container(p) if OmegaConf.is_config(p) else p)
        merged = OmegaConf.to_object(OmegaConf.merge(schema, *patches))
    except OmegaConfBaseException as exc:
        raise _error(exc, schema) from None
    _retuple(merged)
    vars(obj).update(vars(merged))
    return obj


def _retuple(obj, path: str = "") -> None:
    """OmegaConf hands tuple fields back as lists: make them tuples again (checking fixed lengths)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, typ = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            _retuple(value, f"{path}{f.name}.")
        elif typing.get_origin(typ) is tuple and isinstance(value, list):
            if typing.get_args(typ)[-1] is not Ellipsis and len(value) != len(typing.get_args(typ)):
                raise ConfigError(f"{path}{f.name} must be {_expected(typ)}, got {value!r}")
            setattr(obj, f.name, tuple(value))


# ------------------------------------------------------------------ validators
def _choice(path, value, choices):
    if value not in choices:
        raise ConfigError(f"{path} must be one of {list(choices)}, got {value!r}")


def _positive_int(path, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{path} must be a positive integer, got {value!r}")


def _non_negative_int(path, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{path} must be an integer >= 0, got {value!r}")


def _number(path, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{path} must be a finite number, got {value!r}")


def _positive(path, value):
    _number(path, value)
    if value <= 0:
        raise ConfigError(f"{path} must be > 0, got {value!r}")


def _non_negative(path, value):
    _number(path, value)
    if value < 0:
        raise ConfigError(f"{path} must be >= 0, got {value!r}")


def _in_range(path, value, lo, hi, open_low=False):
    _number(path, value)
    if value > hi or value < lo or (open_low and value == lo):
        bracket = "(" if open_low else "["
        raise ConfigError(f"{path} must be in {bracket}{lo}, {hi}], got {value!r}")


def _hidden(path, dims):
    if len(dims) == 0 or any(not isinstance(d, int) or d <= 0 for d in dims):
        raise ConfigError(f"{path} must be a non-empty list of positive layer widths, got {list(dims)}")


__all__ = [
    "ConfigError",
    "EnvConfig",
    "PAPER_RESOLUTIONS_MM",
    "PPOConfig",
    "PRESETS",
    "PRPDConfig",
    "PolicyConfig",
    "QConfig",
    "RunnerConfig",
    "TrainConfig",
    "apply_preset",
    "set_dotted",
]
