"""Warm start from demonstrations: behaviour cloning of the scripted scoop before PPO/PRPD.

From scratch, PPO on the CPU profile needs hundreds of iterations at 70 mm before it first lifts a
rock (measured: ~5 % success after 70 iterations of 32 x 64 steps). The scripted scoop, which sees
only the observation, already succeeds at most resolutions, so its (observation, action) pairs give
the actor a starting point; PPO and the conservative transfer then improve on it. Off by default
(``demo.steps = 0``): the paper trains from scratch.
"""

from __future__ import annotations

import torch

from ..models.actor_critic import ActorCritic


@torch.no_grad()
def collect_demonstrations(env, steps: int, expert, student=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` control steps of ``env``: every observation with the ``expert``'s action for it.

    ``expert`` has ``act(obs)``/``reset(done)``. Without ``student`` the expert drives (behaviour
    cloning data); with one (obs -> env action), the student drives and the expert only labels the
    states it visits (DAgger). The expert's phase machine then advances on the student's motion, so
    its labels say what to do from where the student actually is.
    """
    obs_buf, act_buf = [], []
    obs = env.reset()
    for _ in range(steps):
        label = expert.act(obs)
        obs_buf.append(obs.clone())
        act_buf.append(label.clone())
        res = env.step(label if student is None else student(obs))
        expert.reset(res.done)
        obs = res.obs
    return torch.cat(obs_buf), torch.cat(act_buf)


def behaviour_clone(
    policy: ActorCritic,
    obs: torch.Tensor,
    actions: torch.Tensor,
    action_low: torch.Tensor,
    action_high: torch.Tensor,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    generator: torch.Generator,
    init_noise_std: float,
) -> float:
    """Fit the actor's mean to the demonstrated actions (MSE in the normalised action space).

    Also feeds the demonstration observations to the normaliser and sets the exploration std to
    ``init_noise_std`` (small: the cloned behaviour should be refined, not drowned in noise).
    Returns the final mean squared error.
    """
    centre = (action_high + action_low) / 2
    half = (action_high - action_low) / 2
    target = ((actions - centre) / half).clamp(-1.0, 1.0)
    policy.update_normalizer(obs)
    policy.obs_normalizer.eval()
    opt = torch.optim.Adam(policy.actor.parameters(), lr=learning_rate)
    n = obs.shape[0]
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = torch.nn.functional.mse_loss(policy.action_mean(obs[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        policy.log_std.fill_(float(torch.log(torch.tensor(init_noise_std))))
    return float(loss.detach())
