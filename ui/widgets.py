"""Small widgets of the run view: the scaled image, the state pill, the alarm banner and counters."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QImage, QPainter, QPaintEvent, QPixmap
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from sorter.runlog import AlarmRecord

STATE_COLORS = {
    "idle": "#757575", "starting": "#0277bd", "running": "#2e7d32", "paused": "#ef6c00",
    "stopping": "#ef6c00", "stopped": "#757575", "faulted": "#c62828",
}
SEVERITY_COLORS = {"warning": "#f9a825", "stop": "#ef6c00", "fault": "#c62828"}


def to_qimage(rgb: np.ndarray) -> QImage:
    """A deep copy of an HxWx3 uint8 RGB array as a QImage."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ImageView(QWidget):
    """Shows one image scaled to fit, keeping its aspect ratio; a message when there is none."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: QImage | None = None
        self._scaled: QPixmap | None = None
        self.message = "No image yet: start a run to see the camera."
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paints every pixel: nothing beneath

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._image = None if rgb is None else to_qimage(rgb)
        self._scaled = None
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    def sizeHint(self) -> QSize:
        return QSize(640, 480)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is None:
            painter.setPen(Qt.GlobalColor.lightGray)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
        else:
            pixmap = self._fitted()
            painter.drawPixmap((self.width() - pixmap.width()) // 2, (self.height() - pixmap.height()) // 2,
                               pixmap)
        painter.end()

    def _fitted(self) -> QPixmap:
        """The image scaled to the widget once per image and size, so repaints are a plain copy."""
        if self._scaled is None or not self._fits(self._scaled.size()):
            scaled = self._image.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation)
            self._scaled = QPixmap.fromImage(scaled)
        return self._scaled

    def _fits(self, size: QSize) -> bool:
        return size == self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)


class StatePill(QLabel):
    """The loop state in large coloured letters (Idle, Running, Paused, Faulted ...)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumWidth(150)
        self.state = ""
        self.set_state("idle")

    def set_state(self, state: str) -> None:
        self.state = state
        color = STATE_COLORS.get(state, "#757575")
        self.setText(state.upper())
        self.setStyleSheet(f"background: {color}; color: white; font-size: 18px; font-weight: bold; "
                           "border-radius: 6px; padding: 6px 14px")


class AlarmBanner(QFrame):
    """The oldest alarm still waiting for acknowledgement, with its Acknowledge button."""

    acknowledge = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.pending: dict[int, AlarmRecord] = {}
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.button = QPushButton("Acknowledge")
        self.button.setMinimumHeight(36)
        self.button.clicked.connect(self._clicked)
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        self.hide()

    @property
    def shown(self) -> AlarmRecord | None:
        return min(self.pending.values(), key=lambda a: a.id) if self.pending else None

    def add(self, alarm: AlarmRecord) -> None:
        self.pending[alarm.id] = alarm
        self._refresh()

    def remove(self, alarm_id: int) -> None:
        self.pending.pop(alarm_id, None)
        self._refresh()

    def clear(self) -> None:
        self.pending.clear()
        self._refresh()

    def _clicked(self) -> None:
        alarm = self.shown
        if alarm is not None:
            self.button.setEnabled(False)
            self.button.setText("Acknowledging…")
            self.acknowledge.emit(alarm.id)

    def _refresh(self) -> None:
        alarm = self.shown
        if alarm is None:
            self.hide()
            return
        more = len(self.pending) - 1
        extra = f"  (+{more} more)" if more else ""
        holds = "The run is held until you acknowledge. " if alarm.needs_ack else ""
        head = f"<b>{alarm.severity.upper()}: {alarm.code}</b>"
        self.text.setText(f"{head} — {alarm.message}<br>{holds}{extra}")
        color = SEVERITY_COLORS.get(alarm.severity, "#c62828")
        self.setStyleSheet(f"AlarmBanner {{ background: {color}; border-radius: 6px; }} "
                           "QLabel { color: white; font-size: 14px; }")
        self.button.setEnabled(True)
        self.button.setText("Acknowledge")
        self.show()


class Counter(QFrame):
    """One headline figure with its caption."""

    def __init__(self, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.value = QLabel("—")
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.value.setStyleSheet("font-size: 24px; font-weight: bold")
        label = QLabel(caption)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("color: #555")
        layout = QVBoxLayout(self)
        layout.addWidget(self.value)
        layout.addWidget(label)

    def set(self, text: str) -> None:
        self.value.setText(text)
