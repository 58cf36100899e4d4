"""The recipe's YAML text editor: line numbers, error lines marked in the gutter and the text.

Also turns recipe issues into plain words for the issue list ("must be a number", "robot > speed").
"""

from __future__ import annotations

import re

from PyQt6.QtCore import QRect, QSize, Qt
from PyQt6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCursor,
    QTextFormat,
)
from PyQt6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from sorter.recipe import RecipeIssue

ERROR_LINE = QColor(255, 220, 220)
ERROR_MARK = QColor(200, 30, 30)

_PLAIN = (
    ("Input should be a valid number, unable to parse string as a number", "must be a number"),
    ("Input should be a valid integer, unable to parse string as an integer", "must be a whole number"),
    ("Input should be a valid integer, got a number with a fractional part", "must be a whole number"),
    ("Input should be a valid number", "must be a number"),
    ("Input should be a valid integer", "must be a whole number"),
    ("Input should be a valid boolean", "must be true or false"),
    ("Input should be a valid string", "must be text"),
    ("Input should be a valid list", "must be a list like [a, b]"),
    ("Input should be a valid tuple", "must be a list like [a, b]"),
    ("Input should be a valid dictionary or instance of", "must be a section (key: value lines); expected"),
    ("Input should be", "must be"),
    ("String should have at least 1 character", "must not be empty"),
    ("List should have at least 1 item after validation, not 0", "needs at least one entry"),
    ("Tuple should have at most", "has too many values: at most"),
)
_YAML_HINTS = (
    ("expected <block end>", "the indentation here does not line up with the lines above"),
    ("mapping values are not allowed here", "a ':' is out of place (a missing space or wrong indentation?)"),
    ("could not find expected ':'", "a line is missing its ':' after the key"),
    ("found character '\\t'", "tabs are not allowed; indent with spaces"),
    ("expected ',' or ']'", "a list is missing a ',' or its closing ']'"),
    ("expected ',' or '}'", "a section in braces is missing a ',' or its closing '}'"),
)


def plain_field(field: str) -> str:
    """'sim.items[2].size' -> 'sim > items #3 > size'."""
    field = re.sub(r"\[(\d+)\]", lambda m: f" #{int(m.group(1)) + 1}", field)
    return " > ".join(field.split("."))


def plain_message(issue: RecipeIssue) -> str:
    """The issue's message with schema jargon replaced by plain words."""
    message = issue.message
    if message.startswith("YAML syntax error"):
        for needle, hint in _YAML_HINTS:
            if needle in message:
                return f"{hint} (YAML syntax)"
        return message
    for jargon, plain in _PLAIN:
        if message.startswith(jargon):
            return plain + message[len(jargon):]
    return message


def describe(issue: RecipeIssue) -> str:
    """One line for the issue list: where, what, in plain words."""
    where = f"Line {issue.line}" if issue.line else "File"
    what = plain_field(issue.field)
    return f"{where}: {what}: {plain_message(issue)}" if what else f"{where}: {plain_message(issue)}"


class _Gutter(QWidget):
    def __init__(self, editor: RecipeTextEdit):
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.editor.paint_gutter(event)


class RecipeTextEdit(QPlainTextEdit):
    """Plain-text YAML editor that marks the lines named by recipe issues."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabChangesFocus(False)
        self._error_lines: dict[int, str] = {}
        self._gutter = _Gutter(self)
        self.blockCountChanged.connect(lambda _n: self.setViewportMargins(self.gutter_width(), 0, 0, 0))
        self.updateRequest.connect(self._on_update_request)
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    @property
    def error_lines(self) -> dict[int, str]:
        """1-based line number -> plain description of the first issue on it."""
        return dict(self._error_lines)

    def set_issues(self, issues: list[RecipeIssue]) -> None:
        self._error_lines = {}
        for issue in issues:
            if issue.line:
                self._error_lines.setdefault(issue.line, describe(issue))
        selections = []
        for line in self._error_lines:
            block = self.document().findBlockByNumber(line - 1)
            if not block.isValid():
                continue
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(ERROR_LINE)
            sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            sel.cursor = QTextCursor(block)
            selections.append(sel)
        self.setExtraSelections(selections)
        self._gutter.update()

    def go_to_line(self, line: int) -> None:
        block = self.document().findBlockByNumber(max(line - 1, 0))
        self.setTextCursor(QTextCursor(block))
        self.centerCursor()
        self.setFocus()

    def replace_text(self, text: str) -> None:
        """Replace the document with ``text`` as one undoable edit touching only the lines that differ."""
        old = self.toPlainText()
        if old == text:
            return
        start = 0
        limit = min(len(old), len(text))
        while start < limit and old[start] == text[start]:
            start += 1
        end = 0
        while end < limit - start and old[len(old) - 1 - end] == text[len(text) - 1 - end]:
            end += 1
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(len(old) - end, QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.insertText(text[start:len(text) - end])
        cursor.endEditBlock()

    def gutter_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 14 + self.fontMetrics().horizontalAdvance("9") * (digits + 1)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        rect = self.contentsRect()
        self._gutter.setGeometry(QRect(rect.left(), rect.top(), self.gutter_width(), rect.height()))

    def _on_update_request(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), self.palette().alternateBase())
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            line = block.blockNumber() + 1
            if line in self._error_lines:
                painter.setBrush(ERROR_MARK)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.drawEllipse(3, top + height // 2 - 4, 8, 8)
                painter.setPen(ERROR_MARK)
            else:
                painter.setPen(self.palette().text().color())
            painter.drawText(0, top, self._gutter.width() - 4, height, Qt.AlignmentFlag.AlignRight, str(line))
            top += round(self.blockBoundingRect(block).height())
            block = block.next()
        painter.end()
