"""Particle-particle contacts in which sleeping soil still supports the awake soil beside it.

Newton's XPBD solver skips a neighbour that is not ACTIVE, so with sleep on (``sleeping.py``) the
awake soil at the edge of the sleeping soil lost its support and slumped: at 10 mm a trench ~15 mm
deep formed round the rock within three steps. Keeping sleepers ACTIVE with zero inverse mass (a
static shell) was worse: the settled XPBD bed rests with its particles overlapping, and a static
neighbour takes none of a contact's correction, so the awake particle beside it was pushed twice as
hard.

This kernel is Newton 1.8's ``solve_particle_particle_contacts`` (same arguments, same arithmetic in
the same order) with one change: a neighbour carrying ``SUPPORT`` (a sleeping soil particle: not
ACTIVE, so every other kernel leaves it alone) counts as a contact with its real inverse mass and
zero velocity. The awake particle therefore takes exactly the share of the correction it takes from
an awake neighbour, and a bed at rest stays at rest across the sleep boundary; the sleeper itself is
not moved (it is not ACTIVE, and no thread runs for it). With no ``SUPPORT`` flag set the kernel
computes what Newton's does, bit for bit (``tests/sim/test_sim_sleep.py`` checks both).

``install()`` puts it in place of Newton's kernel in the XPBD solver module, the one name the
solver's ``step`` launches (pinned ``newton==1.8.0``; the test above fails if that name moves).
"""

from __future__ import annotations

import warp as wp

from newton import ParticleFlags

SUPPORT = wp.constant(1 << 30)
"""Particle flag of a sleeping soil particle: not simulated, but a contact for its awake neighbours.
Newton's kernels read only the ACTIVE and PROXY bits."""


@wp.kernel
def solve_particle_particle_contacts_with_support(
    grid: wp.uint64,
    particle_x: wp.array[wp.vec3],
    particle_v: wp.array[wp.vec3],
    particle_invmass: wp.array[float],
    particle_radius: wp.array[float],
    particle_flags: wp.array[wp.int32],
    k_mu: float,
    k_cohesion: float,
    max_radius: float,
    dt: float,
    relaxation: float,
    # outputs
    deltas: wp.array[wp.vec3],
):
    tid = wp.tid()
    i = wp.hash_grid_point_id(grid, tid)  # threads ordered by cell
    if i == -1:
        return  # the hash grid has not been built yet
    particle_flag = particle_flags[i]
    if (particle_flag & ParticleFlags.ACTIVE) == 0:
        return
    is_proxy = particle_flag & ParticleFlags.PROXY

    x = particle_x[i]
    v = particle_v[i]
    radius = particle_radius[i]
    w1 = particle_invmass[i]

    query = wp.hash_grid_query(grid, x, radius + max_radius + k_cohesion)
    index = int(0)
    delta = wp.vec3(0.0)

    while wp.hash_grid_query_next(query, index):
        neighbor_flag = particle_flags[index]
        support = (neighbor_flag & SUPPORT) != 0
        if (
            ((neighbor_flag & ParticleFlags.ACTIVE) != 0 or support)
            and (is_proxy == 0 or ((neighbor_flag & ParticleFlags.PROXY) == 0 and particle_invmass[index] > 0.0))
            and index != i
        ):
            n = x - particle_x[index]
            d = wp.length(n)
            err = d - radius - particle_radius[index]
            w2 = particle_invmass[index]
            denom = w1 + w2
            if err <= k_cohesion and denom > 0.0 and d > 0.0:
                n = n / d
                # a sleeper is at rest (its stored velocity may be stale: the solver never writes it)
                vrel = v
                if not support:
                    vrel = v - particle_v[index]
                lambda_n = err
                delta_n = n * lambda_n
                vn = wp.dot(n, vrel)
                vt = vrel - n * vn
                lambda_f = wp.max(k_mu * lambda_n, -wp.length(vt) * dt)
                delta_f = wp.normalize(vt) * lambda_f
                delta += (delta_f - delta_n) / denom

    wp.atomic_add(deltas, i, delta * w1 * relaxation)


def install() -> None:
    """Make Newton's XPBD solver launch the kernel above (idempotent)."""
    from newton._src.solvers.xpbd import solver_xpbd

    if not hasattr(solver_xpbd, "solve_particle_particle_contacts"):
        raise RuntimeError("newton's XPBD solver no longer launches solve_particle_particle_contacts by that name: "
                           "soil_contacts.install() needs updating for this newton version")
    solver_xpbd.solve_particle_particle_contacts = solve_particle_particle_contacts_with_support


__all__ = ["SUPPORT", "install", "solve_particle_particle_contacts_with_support"]
