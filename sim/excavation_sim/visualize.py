"""Pictures of a scene: the rendered depth image beside a 3D view of soil, rock and bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _box_edges(center, half, R):
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float) * half
    pts = corners @ R.T + center
    edges = []
    for i in range(8):
        for j in range(i + 1, 8):
            if np.sum(np.abs(np.array(corners[i]) - np.array(corners[j])) > 1e-9) == 1:
                edges.append((pts[i], pts[j]))
    return edges


def save_scene_picture(env, frame, path: str | Path, env_id: int = 0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.spatial.transform import Rotation

    from excavation_contract import pitch_rotation

    from .scene import bucket_boxes

    fig = plt.figure(figsize=(13, 5.5))
    ax0 = fig.add_subplot(1, 2, 1)
    depth = np.where(frame.depth > 0, frame.depth, np.nan)
    im = ax0.imshow(depth, cmap="viridis")
    fig.colorbar(im, ax=ax0, label="forward depth (m), white = no return")
    ax0.set_title(f"depth camera {frame.depth.shape[1]}x{frame.depth.shape[0]} (robot side at the bottom)")

    ax = fig.add_subplot(1, 2, 2, projection="3d")
    soil = env.soil_particles(env_id)
    ax.scatter(soil[:, 0], soil[:, 1], soil[:, 2], s=max(2.0, 2000 * env.scene.delta), c=soil[:, 2], cmap="copper", alpha=0.5)
    rock_pos, rock_quat = env.rock_pose()
    Rr = Rotation.from_quat(rock_quat[env_id].cpu().numpy()).as_matrix()
    rock = env.scene.worlds[env_id].rock
    for c, h in zip(rock.centers, rock.half_extents):
        for a, b in _box_edges(rock_pos[env_id].cpu().numpy() + Rr @ c, h, Rr):
            ax.plot(*zip(a, b), color="firebrick", lw=1.2)
    tip = env.tip[env_id].cpu().numpy()
    Rb = pitch_rotation(float(env.pitch[env_id]))
    for c, h in bucket_boxes(env.bucket_geom):
        for a, b in _box_edges(tip + Rb @ np.array(c), np.array(h), Rb):
            ax.plot(*zip(a, b), color="steelblue", lw=0.8)
    half = env.cfg.scene.tray_size / 2
    ax.set_xlim(-0.2, 0.2)
    ax.set_ylim(-0.2, 0.2)
    ax.set_zlim(-0.12, 0.2)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.plot([-half, half, half, -half, -half], [-half, -half, half, half, -half], [0] * 5, color="gray", lw=0.8)
    ax.set_title(f"{env.delta_mm:g} mm: {len(soil)} soil particles, rock (red), bucket (blue)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
