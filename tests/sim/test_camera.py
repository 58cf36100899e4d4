"""The simulated RGB-D camera: frame format, D435-like intrinsics and noise, masks, faults."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.cell.base import CameraDisconnected, CameraTimeout


def test_frame_matches_the_realsense_format_and_geometry(toy):
    toy.reset("random", 1)
    frame = toy.camera.read()
    intr = toy.camera.intrinsics
    assert (intr.width, intr.height) == (640, 480) and 600 < intr.fx < 630
    assert frame.color.dtype == np.uint8 and frame.color.shape == (480, 640, 3)
    assert frame.depth.dtype == np.float32 and frame.depth.shape == (480, 640)
    valid = frame.depth[frame.depth > 0]
    camera_height = toy.camera_pose.translation[2] - toy.recipe.workspace.table_z
    assert abs(np.median(valid) - camera_height) < 0.05
    assert 0.0005 < np.mean(frame.depth == 0) < 0.05, "some pixels drop out at depth edges, not many"


def test_depth_back_projects_onto_the_objects(toy):
    toy.reset("random", 1)
    frame = toy.camera.read()
    points = toy.camera_pose.apply(frame.intrinsics.deproject(frame.depth))
    visible = toy.truth.visible_mask()
    for state in toy.truth.objects():
        mask = (visible == state.id) & (frame.depth > 0)
        if mask.sum() < 50:
            continue
        centre = points[mask].mean(axis=0)
        assert np.linalg.norm(centre[:2] - state.position[:2]) < 0.015
        assert points[mask][:, 2].max() < state.position[2] + 0.03


def test_impurities_have_their_recipe_hue_and_are_shaded(toy):
    toy.reset("random", 1)
    frame = toy.camera.read()
    visible = toy.truth.visible_mask()
    for oid in toy.truth.impurity_ids():
        state = toy.truth.object(oid)
        spec = next(s for s in toy.recipe.sim.impurities if s.name == state.name)
        pixels = frame.color[visible == oid].astype(float)
        seen = pixels.mean(axis=0)
        mean = np.array(spec.color.mean, float)
        assert np.abs(seen / seen.sum() - mean / mean.sum()).max() < 0.06
        assert seen.sum() < mean.sum() + 20, "Lambert shading never brightens beyond the albedo"
        assert pixels.sum(axis=1).std() > 5, "faces turned from the light are darker, texture varies"


def test_amodal_mask_contains_the_visible_pixels(toy):
    toy.reset("30", 1)
    toy.camera.read()
    visible = toy.truth.visible_mask()
    for state in toy.truth.objects()[:10]:
        amodal = toy.truth.amodal_mask(state.id)
        own = visible == state.id
        assert np.sum(own & ~amodal) <= 0.01 * max(own.sum(), 1)
        assert 0.0 <= toy.truth.occlusion_rate(state.id) <= 1.0


def test_camera_noise_is_seeded_by_scene_and_frame(toy):
    toy.reset("clean", 1)
    a, b = toy.camera.read(), toy.camera.read()
    assert b.sequence == a.sequence + 1 and b.timestamp > a.timestamp
    assert not np.array_equal(a.depth, b.depth), "each frame has its own sensor noise"
    toy.reset("clean", 1)
    assert np.array_equal(toy.camera.read().depth, a.depth)


def test_injected_dropouts_time_out_then_frames_resume(toy):
    toy.reset("clean", 1)
    toy.faults.camera_dropouts = 2
    for _ in range(2):
        with pytest.raises(CameraTimeout):
            toy.camera.read()
    assert toy.camera.read().color.shape == (480, 640, 3)


def test_read_latest_reuses_a_fresh_frame_and_disconnect_is_reported(toy):
    toy.reset("clean", 1)
    frame = toy.camera.read()
    assert toy.camera.read_latest(max_age=1.0) is frame
    toy.camera.disconnect()
    with pytest.raises(CameraDisconnected):
        toy.camera.read()
    toy.camera.connect()
    assert toy.camera.read().sequence == frame.sequence + 1


def test_recasting_only_what_moved_equals_a_full_render(toy):
    from sorter.cell.sim.camera import RayCaster
    from sorter.cell.sim.scripted import push_action

    toy.reset("30", 1)
    toy.camera.read()
    target = toy.truth.objects()[3].id
    toy.robot.execute(push_action(toy, target, 0.5))
    incremental = toy.caster.hits()
    full = RayCaster(toy.scene, toy.camera_pose, toy.caster.intr, toy.caster.bg).hits()
    for a, b in zip(incremental, full, strict=True):
        assert np.array_equal(a, b)


def test_a_cast_shared_between_threads_equals_one_thread_s(cells, monkeypatch):
    """Large casts go half to a helper thread with its own copy of the state: same hits, bit for bit,
    on meshes (coal lumps) and primitives alike, and the scene's own state is left untouched."""
    import sorter.cell.sim.camera as camera

    coal = cells["coal-slate"]
    coal.reset("30", 1)
    caster = coal.caster
    idx = caster.pixels_covering(caster._movers)
    assert len(idx) >= camera.PARALLEL_RAYS
    groups = camera._groups(camera.GROUP_GRIPPER, camera.GROUP_OBJECT)
    qpos = coal.scene.data.qpos.copy()
    monkeypatch.setattr(camera, "RAY_THREADS", 2)
    shared = caster.cast(idx, groups, False)
    monkeypatch.setattr(camera, "RAY_THREADS", 1)
    single = caster.cast(idx, groups, False)
    assert (single[0] >= 0).sum() > len(idx) // 2  # the rays meet the lumps: the comparison means something
    for a, b in zip(shared, single, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(coal.scene.data.qpos, qpos)


def test_a_forked_child_casts_with_its_own_helper_thread(cells):
    """A process forked after the helper thread started (a worker started with fork) must not wait on
    the parent's helper, which does not exist in the child."""
    import multiprocessing

    import sorter.cell.sim.camera as camera

    if camera.RAY_THREADS < 2:
        pytest.skip("one CPU: casts never use the helper thread")
    toy = cells["toy-blocks"]
    toy.reset("30", 1)
    toy.caster.hits()  # the helper thread exists now
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_cast_in_child, args=(toy,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def _cast_in_child(cell) -> None:
    from sorter.cell.sim.camera import RayCaster

    caster = RayCaster(cell.scene, cell.camera_pose, cell.caster.intr, cell.caster.bg)
    assert (caster.hits()[0] >= 0).any()
