"""Fleet memory (issue 15): what a robot's memory needs to know of the fleet it belongs to.

Nothing here imports ROS.
"""
