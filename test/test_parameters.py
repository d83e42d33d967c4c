"""Parameter specs, whole-set validation, and their rclpy declarations."""

import dataclasses
from contextlib import contextmanager

import pytest
import rclpy
from rclpy.parameter import Parameter

from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.choices import ADAPTATION_DEFAULTS, NODE_BUDGET_MS, TASK_DEFAULTS
from ttt_perception.ros import parameters as P


def test_defaults_are_valid_and_every_parameter_of_the_issue_exists():
    values = P.defaults()
    assert P.validate(values) == []
    for name in ("model.path", "model.device", "model.threads", "cameras", "input.transport", "input.qos",
                 "adaptation.mode", "adaptation.objective",
                 "adaptation.max_steps", "adaptation.learning_rate", "adaptation.batch_size",
                 "adaptation.share_state", "deadline.budget_ms", "deadline.policy", "deadline.clock",
                 "detection.score_threshold", "detection.max_detections", "publish_debug_image", "autostart"):
        assert name in values


def test_adaptation_parameters_take_their_choices_and_defaults_from_the_core():
    from ttt_perception import choices
    from ttt_perception.adaptation_config import AdaptationConfig

    by_field = {spec.adapter_field: spec for spec in P.SPECS if spec.adapter_field}
    assert by_field["mode"].choices == choices.MODES
    assert by_field["objective"].choices == choices.OBJECTIVES
    assert by_field["parameters"].choices == choices.PARAMETER_SETS
    assert by_field["policy"].choices == choices.POLICIES
    config = AdaptationConfig()
    for field, spec in by_field.items():
        expected = choices.NODE_BUDGET_MS if field == "budget_ms" else getattr(config, field)
        assert spec.default == expected and type(spec.default) is type(expected), field


@pytest.mark.parametrize(
    "name, value, text",
    [
        ("adaptation.mode", "sometimes", "adaptation.mode must be one of off, reset, online"),
        ("adaptation.objective", "contrastive", "one of rotation, entropy"),
        ("adaptation.parameters", "head", "one of auto, extractor, stem, norm"),
        ("adaptation.max_steps", 101, "[0, 100]"),
        ("adaptation.max_steps", 2.0, "must be an integer"),
        ("adaptation.learning_rate", -0.01, "[0, 1]"),
        ("adaptation.learning_rate", float("nan"), "finite"),
        ("adaptation.batch_size", -1, "[0, 256]"),
        ("adaptation.momentum", -0.5, "or -1 for the model's task's"),
        ("adaptation.momentum", 1.0, "[-1, 0.99]"),
        ("adaptation.max_ssl_loss", -0.5, "or -1 for the model's task's"),
        ("adaptation.max_ssl_loss", -2.0, "[-1, 100]"),
        ("adaptation.confidence_floor", -0.5, "or -1 for the model's task's"),
        ("adaptation.confidence_floor", 1.5, "[-1, 1]"),
        ("adaptation.min_ssl_loss", -0.5, "[0, 100]"),
        ("deadline.budget_ms", -1.0, "[0, 60000]"),
        ("deadline.policy", "maybe", "truncate, skip"),
        ("deadline.clock", "wall", "arrival, stamp"),
        ("detection.score_threshold", 1.5, "[0, 1]"),
        ("input.qos", "best_effort", "sensor_data, reliable"),
        ("input.transport", "both", "raw, compressed"),
        ("input.transport", "jpeg", "raw, compressed"),
        ("model.device", "tpu", "auto, cpu, cuda or cuda:N"),
        ("cameras", ["front", "front"], "duplicate"),
        ("cameras", ["front", ""], "not a relative ROS name"),
        ("cameras", ["/abs"], "not a relative ROS name"),
        ("publish_debug_image", "yes", "true or false"),
        ("adaptation.mode", True, "true names no mode"),
        ("input.qos", False, "quote the text"),
        ("model.path", 12, "reads it as a number"),
        ("cameras", ["front", True], "quote the text"),
        ("model.threads", -1, "[0, 256]"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(name, value, text):
    values = P.defaults()
    values[name] = value
    errors = P.validate(values)
    assert errors and text in "; ".join(errors)


def test_integers_are_accepted_for_float_parameters():
    values = P.defaults()
    values["deadline.budget_ms"] = 50
    assert P.validate(values) == []
    assert P.adapter_settings(values)["budget_ms"] == 50.0
    assert isinstance(P.adapter_settings(values)["budget_ms"], float)


def test_adapter_settings_map_to_config_fields():
    settings = P.adapter_settings(P.defaults())
    fields = {f.name for f in dataclasses.fields(AdaptationConfig)}
    assert set(settings) <= fields
    assert {"mode", "learning_rate", "adapt_after_publish", "min_ssl_loss_ratio"} <= set(settings)
    # the node runs the core's defaults, except its per-frame deadline (a 10 Hz camera)
    expected = {name: ADAPTATION_DEFAULTS[name] for name in settings} | {"budget_ms": NODE_BUDGET_MS}
    assert settings == expected
    assert dataclasses.replace(AdaptationConfig(), **settings).validated().budget_ms == NODE_BUDGET_MS


def test_camera_names_and_topics():
    assert P.camera_names({"cameras": [""]}) == [""]
    assert P.camera_names({"cameras": []}) == [""]
    assert P.topic("", "image") == "image"
    assert P.topic("front/left", "image/compressed") == "front/left/image/compressed"


def test_changed_kinds_sort_changes_by_when_they_apply():
    old = P.defaults()
    new = dict(old, **{"adaptation.mode": "reset", "model.device": "cpu"})
    kinds = P.changed_kinds(old, new)
    assert kinds[P.LIVE] == ["adaptation.mode"] and kinds[P.RECONFIGURE] == ["model.device"]


def test_descriptors_carry_ranges_read_only_and_when_changes_apply():
    steps = P.descriptor(P.SPEC_BY_NAME["adaptation.max_steps"])
    assert (steps.integer_range[0].from_value, steps.integer_range[0].to_value) == (0, 100)
    lr = P.descriptor(P.SPEC_BY_NAME["adaptation.learning_rate"])
    assert lr.floating_point_range[0].to_value == 1.0
    assert P.descriptor(P.SPEC_BY_NAME["autostart"]).read_only
    assert "next configure" in P.descriptor(P.SPEC_BY_NAME["model.path"]).description
    assert "live" in P.descriptor(P.SPEC_BY_NAME["adaptation.mode"]).description
    assert "off, reset, online" in P.descriptor(P.SPEC_BY_NAME["adaptation.mode"]).additional_constraints


@contextmanager
def _declared_node(overrides):
    """A real rclpy node with these overrides (as a parameters file or -p gives them), declared."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("param_decl_test", context=context, start_parameter_services=False,
                                 parameter_overrides=overrides)
        yield node, P.declare_parameters(node)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.ros
def test_declaration_on_a_real_node_keeps_defaults_for_refused_overrides():
    with _declared_node([
        Parameter("adaptation.mode", value="reset"),
        Parameter("adaptation.max_steps", value=500),  # out of range
        Parameter("adaptation.batch_size", value=2.5),  # a double for an integer parameter
        Parameter("deadline.budget_ms", value=40),  # an integer for a double parameter
    ]) as (node, (values, problems)):
        assert values["adaptation.mode"] == "reset"
        assert values["adaptation.max_steps"] == 1
        assert values["adaptation.batch_size"] == ADAPTATION_DEFAULTS["batch_size"]
        assert values["cameras"] == [""]
        assert sorted(problems) == ["adaptation.batch_size", "adaptation.max_steps"]
        assert "[0, 100]" in problems["adaptation.max_steps"] and "integer" in problems["adaptation.batch_size"]
        assert P.validate(values) == []


@pytest.mark.ros
def test_yaml_off_and_integer_doubles_are_declared_with_the_declared_type():
    """What a parameters file or `-p` gives for `adaptation.mode: off` and `deadline.budget_ms: 40`."""
    with _declared_node([
        Parameter("adaptation.mode", value=False),
        Parameter("deadline.budget_ms", value=40),
        Parameter("adaptation.min_ssl_loss", value=1),
    ]) as (node, (values, problems)):
        assert problems == {}
        assert values["adaptation.mode"] == "off"
        assert node.get_parameter("adaptation.mode").type_ == Parameter.Type.STRING
        assert values["deadline.budget_ms"] == 40.0 and isinstance(values["deadline.budget_ms"], float)
        for name in ("deadline.budget_ms", "adaptation.min_ssl_loss"):
            assert node.get_parameter(name).type_ == Parameter.Type.DOUBLE
            assert node.describe_parameter(name).type == Parameter.Type.DOUBLE.value


@pytest.mark.ros
def test_true_is_no_mode_and_stays_refused():
    with _declared_node([Parameter("adaptation.mode", value=True)]) as (node, (values, problems)):
        assert values["adaptation.mode"] == "online"
        assert "true names no mode" in problems["adaptation.mode"]


def test_normalise_turns_off_into_the_mode_and_integers_into_doubles():
    assert P.normalise("adaptation.mode", False) == "off"
    assert P.normalise("adaptation.mode", True) is True  # refused by validation, with the reason
    assert P.normalise("deadline.budget_ms", 150) == 150.0 and isinstance(P.normalise("deadline.budget_ms", 150), float)
    assert P.normalise("adaptation.max_steps", 3) == 3 and isinstance(P.normalise("adaptation.max_steps", 3), int)
    assert P.normalise("deadline.budget_ms", True) is True
    assert P.normalise("not.ours", False) is False


def test_descriptor_ranges_are_what_validation_takes():
    """`ros2 param describe` must not state a bound that a set refuses (learning_rate's 0 was one)."""
    for spec in P.SPECS:
        if spec.low is None:
            continue
        desc = P.descriptor(spec)
        bounds = (desc.integer_range or desc.floating_point_range)[0]
        for value in (bounds.from_value, bounds.to_value):
            values = P.defaults()
            values[spec.name] = value
            assert P.validate(values) == [], (spec.name, value)
        assert desc.dynamic_typing is False


def test_adapter_settings_are_fields_of_the_core_config_and_valid_there():
    import dataclasses

    from ttt_perception.adaptation_config import AdaptationConfig

    fields = {field.name for field in dataclasses.fields(AdaptationConfig)}
    settings = P.adapter_settings(P.defaults())
    assert set(settings) <= fields
    config = dataclasses.replace(AdaptationConfig(), **settings).validated()
    assert config.mode == "online" and config.budget_ms == 100.0


def test_configure_log_names_what_each_auto_value_stands_for():
    from ttt_perception.ros.node import auto_values_text

    given = AdaptationConfig(learning_rate=0.01)  # explicit: not named; the other per-task ones are auto
    text = auto_values_text(given, given.resolved_for("detector"))
    assert "learning_rate" not in text
    for field, value in TASK_DEFAULTS["detector"].items():
        if field != "learning_rate":
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert f"{field} {shown} (auto)" in text, field
