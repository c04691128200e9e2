"""Typed, bounded inputs for a method's parameters, built from ``Solver.describe_params()``.

Each parameter gets the editor its description calls for: a check box (bool), a
drop-down (``choices``), an editable drop-down (``suggestions``, e.g. shipped denoiser
names besides a path), a spin box bounded by ``minimum``/``maximum`` (int), a spin box
that reads and shows any float in scientific notation (float), or a line edit (other
text and literals). Rows show the readable ``label``; the tooltip adds the paper's
symbol, the help text, the default, the bounds and the unit. Parameters marked
``basic`` come first; the others sit in a collapsed *Advanced* section; parameters that
do not apply to the method are not shown (the method's default is used).
"""

from __future__ import annotations

import math
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from .. import _logic
from ._common import INT32_MAX


class ScientificSpinBox(QDoubleSpinBox):
    """A float spin box that keeps full precision and shows values like ``2.4`` or ``1e-06``.

    A plain :class:`QDoubleSpinBox` rounds to a fixed number of decimals, which turns
    1e-6 into 0 or shows 0.200000; here the text is the shortest faithful form, typed
    text in any float notation is accepted when it lies within the bounds, and the
    arrows step by a tenth of the value's order of magnitude.
    """

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(323)  # Qt's largest: values are not rounded
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt's name)
        return f"{value:.12g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, position: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, position
        inside = self.minimum() <= value <= self.maximum() and math.isfinite(value)
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate), text, position

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.value())

    def stepBy(self, steps: int) -> None:  # noqa: N802
        value = self.value()
        step = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value != 0 else 0.1
        self.setValue(value + steps * step)


def parameter_tooltip(spec: dict[str, Any]) -> str:
    """The tooltip of a parameter: symbol and name, help, default, bounds, unit."""
    name = f"{spec['symbol']} ({spec['name']})" if spec.get("symbol") else spec["name"]
    lines = [f"{name}: {spec.get('help', '')}", f"default: {spec['default']!r}"]
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None or high is not None:
        lines.append(f"range: {'-inf' if low is None else low} to {'inf' if high is None else high}")
    if spec.get("unit"):
        lines.append(f"unit: {spec['unit']}")
    return "\n".join(lines)


class ParameterField:
    """The input of one solver parameter: a typed Qt editor and the description it came from.

    Attributes
    ----------
    spec : dict
        The parameter's entry of ``describe_params()``.
    native : QWidget
        The editor.
    """

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.name = spec["name"]
        self.native = self._editor(spec)
        self.native.setObjectName(f"parameter_{self.name}")
        self.native.setToolTip(parameter_tooltip(spec))
        self.value = spec["default"]

    @staticmethod
    def _editor(spec: dict[str, Any]) -> QWidget:
        default = spec["default"]
        if isinstance(default, bool):
            return QCheckBox()
        if spec.get("choices") or spec.get("suggestions"):
            combo = QComboBox()
            combo.setEditable(not spec.get("choices"))
            for item in spec.get("choices") or spec.get("suggestions"):
                combo.addItem(str(item), item)
            return combo
        low, high = spec.get("minimum"), spec.get("maximum")
        if isinstance(default, int):
            box = QSpinBox()
            box.setRange(
                -INT32_MAX if low is None else max(-INT32_MAX, int(math.ceil(low))),
                INT32_MAX if high is None else min(INT32_MAX, int(math.floor(high))),
            )
            box.setKeyboardTracking(False)
            if low == 0 and "(0:" in spec.get("help", ""):  # 0 asks the method to choose
                box.setSpecialValueText("auto")
            return box
        if isinstance(default, float):
            return ScientificSpinBox(-math.inf if low is None else low, math.inf if high is None else high)
        return QLineEdit()

    @property
    def value(self) -> Any:
        """The typed value (bool, a choice, int, float or str; a literal for other editors)."""
        editor = self.native
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            if editor.isEditable():
                return editor.currentText().strip()
            return editor.currentData()
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            return editor.value()
        return _logic.parse_parameter(self.name, self.spec["default"], editor.text())

    @value.setter
    def value(self, value: Any) -> None:
        editor = self.native
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            index = editor.findData(value)
            if index >= 0:
                editor.setCurrentIndex(index)
            elif editor.isEditable():
                editor.setEditText(str(value))
            else:
                raise ValueError(f"{value!r} is not a choice of {self.name}: {self.spec['choices']}")
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(value)
        else:
            editor.setText(value if isinstance(value, str) else repr(value))

    @property
    def tooltip(self) -> str:
        return self.native.toolTip()

    @property
    def enabled(self) -> bool:
        return self.native.isEnabled()

    @enabled.setter
    def enabled(self, enabled: bool) -> None:
        self.native.setEnabled(enabled)


class ParameterPanel(QWidget):
    """A method's parameters: the basic ones, then a collapsed *Advanced* section."""

    #: Emitted with the parameter's name when the user edits any field.
    edited = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._fields: dict[str, ParameterField] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._basic = QWidget()
        self._basic_form = QFormLayout(self._basic)
        self._basic_form.setContentsMargins(0, 0, 0, 0)
        self._advanced_content = QWidget()
        self._advanced_form = QFormLayout(self._advanced_content)
        self._advanced_form.setContentsMargins(0, 0, 0, 0)
        self._advanced = QCollapsible("Advanced parameters")
        self._advanced.setDuration(0)
        self._advanced.addWidget(self._advanced_content)
        layout.addWidget(self._basic)
        layout.addWidget(self._advanced)

    @property
    def fields(self) -> dict[str, ParameterField]:
        """Name -> field, of the parameters shown (in display order)."""
        return dict(self._fields)

    @property
    def advanced(self) -> QCollapsible:
        """The collapsible section of the parameters not marked basic."""
        return self._advanced

    def set_parameters(self, specs: list[dict[str, Any]]) -> None:
        """Show the fields of ``specs`` (a method's ``describe_params()``), dropping the old ones."""
        for form in (self._basic_form, self._advanced_form):
            while form.rowCount():
                form.removeRow(0)
        self._fields = {}
        shown = [spec for spec in specs if spec.get("applies", True)]
        for spec in sorted(shown, key=lambda spec: not spec.get("basic")):
            field = ParameterField(spec)
            form = self._basic_form if spec.get("basic") else self._advanced_form
            form.addRow(spec["label"], field.native)
            form.labelForField(field.native).setToolTip(field.tooltip)
            self._connect_edits(field)
            self._fields[spec["name"]] = field
        self._advanced.setVisible(self._advanced_form.rowCount() > 0)
        self._advanced.collapse(animate=False)

    def _connect_edits(self, field: ParameterField) -> None:
        editor = field.native
        signal = {
            QCheckBox: "toggled",
            QComboBox: "currentTextChanged",
            QSpinBox: "valueChanged",
            ScientificSpinBox: "valueChanged",
            QLineEdit: "textEdited",
        }[type(editor)]
        getattr(editor, signal).connect(lambda *_: self.edited.emit(field.name))

    def values(self) -> dict[str, Any]:
        """The shown parameters' values (raises :class:`._logic.InputError` for bad text)."""
        return {name: field.value for name, field in self._fields.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Set the fields named in ``values``; names not shown are ignored."""
        for name, value in values.items():
            if name in self._fields:
                self._fields[name].value = value

    def set_enabled(self, enabled: bool) -> None:
        for field in self._fields.values():
            field.enabled = enabled


__all__ = ["ParameterField", "ParameterPanel", "ScientificSpinBox", "parameter_tooltip"]
