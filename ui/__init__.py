"""PyQt6 operator application (sorter-gui)."""
