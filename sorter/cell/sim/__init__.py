"""The MuJoCo simulated cell: scene, ray-cast camera, gripper primitives, scenarios, ground truth."""
