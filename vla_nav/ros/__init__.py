"""The ROS 2 layer every node and tool shares: one place per conversion, QoS profile and idiom.

Below vla_nav.nodes and vla_nav.tools, above vla_nav.core/vla_nav.config:

- `convert`: pure message <-> number conversions (stamps, quaternion -> yaw, chunk messages ->
  arrays, odometry, topic names). Attribute access only, so they work on rclpy messages AND on
  rosbags message objects, and importing them never imports rclpy (data/ and the no-ROS venv
  use them).
- `msgs`: numbers -> rclpy messages (chunks, twists, images, compressed images, odometry,
  diagnostics) and image messages -> RGB; rclpy message types are imported inside the functions.
- `qos`: the three QoS profiles (sensor, latched instruction, reliable).
- `params`: parameters declared from config/vla_nav.yaml with types checked at start and on
  `ros2 param set`.
- `runner`: rclpy start-up without rclpy's signal handlers, the spin loop, SIGINT/SIGTERM,
  the on_shutdown hook, and Python logging/warnings routed to the node's ROS logger.

Nothing here imports rclpy at module import time.
"""
