import onnx
import pytest
from onnx import TensorProto, helper

from offroad_core import contract, ontology
from offroad_core.contract import ContractError, ModelContract, QnnInfo


def _tiny_model() -> onnx.ModelProto:
    inp = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 4, 3])
    out = helper.make_tensor_value_info("out", TensorProto.UINT8, [1, 4, 4, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g", [inp],
                              [out])
    return helper.make_model(graph)


def test_defaults_follow_the_ontology():
    c = ModelContract()
    assert c.class_names == ontology.CLASS_NAMES
    assert c.num_classes == 7
    assert c.palette[4] == ontology.CLASSES[4].rgb
    assert (c.height, c.width, c.layout, c.input_dtype) == (544, 640, "NHWC", "uint8")


def test_metadata_round_trip_including_qnn_info(tmp_path):
    qnn = QnnInfo("2.7.0", "2.51.0", 77, 73, "int8", "ab" * 32)
    original = ModelContract(height=128, width=160, has_confidence=True, model_version="1.0.0",
                             producer={"git_revision": "abc", "miou": 0.71}).with_qnn(qnn)
    model = _tiny_model()
    entry = model.metadata_props.add()
    entry.key, entry.value = "other", "kept"
    contract.write_contract(model, original)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert contract.read_contract(path) == original
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["other"] == "kept"


def test_missing_metadata_names_the_fix(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(_tiny_model(), str(path))
    with pytest.raises(ContractError, match="offroad export onnx"):
        contract.read_contract(path)


def test_corrupt_and_missing_files_raise_contract_errors(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        contract.read_contract(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ContractError, match="corrupt"):
        contract.read_contract(bad)


def test_inconsistent_contract_is_rejected():
    with pytest.raises(ContractError, match="palette"):
        ModelContract(palette=((0, 0, 0),)).validate()
    with pytest.raises(ContractError, match="ignore_index"):
        ModelContract(ignore_index=3).validate()
    meta = ModelContract().to_metadata()
    meta["offroad.contract_version"] = "99"
    with pytest.raises(ContractError, match="version"):
        ModelContract.from_metadata(meta)
