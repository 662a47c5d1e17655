"""Independent synthetic depth-scene generator for testing rock perception (second source of truth).

It shares nothing with the perception package's own renderer: soil is an analytic heightfield hit
by ray marching + bisection, rocks are superquadrics and random-half-space polyhedra, the bucket is
built from ``excavation_contract.BucketGeometry``, and a D435-like sensor model adds noise, stereo
shadow, edge loss, dropouts and quantisation.

    from scenegen import FAMILIES, make_scene, depth_16uc1
    scene = make_scene("two_rocks", 3)            # Scene; scene.depth float32 m, 0 = no data
    img = depth_16uc1(scene)                      # uint16 mm
    clean = make_scene("two_rocks", 3, noise=False)  # same geometry, ideal depth
"""

from .build import make_scene
from .families import FAMILIES
from .scene import RockTruth, Scene, depth_16uc1

__all__ = ["FAMILIES", "RockTruth", "Scene", "depth_16uc1", "make_scene"]
