"""SyntheticDriving: item format, determinism, label consistency, and the loader's collation."""

from __future__ import annotations

import pytest
import torch

from taskprune.driving import SyntheticDriving, loader


def test_item_format():
    data = SyntheticDriving(8, size=(96, 160), seed=0)
    for i in range(len(data)):
        item = data[i]
        assert item["image"].shape == (3, 96, 160) and item["image"].dtype == torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["drivable"].shape == item["lane"].shape == (96, 160)
        assert item["drivable"].dtype == item["lane"].dtype == torch.long
        assert set(item["drivable"].unique().tolist()) <= {0, 1} and set(item["lane"].unique().tolist()) <= {0, 1}
        boxes = item["boxes"]
        assert boxes.dim() == 2 and boxes.shape[1] == 5
        assert (boxes[:, 0] == 0).all()
        assert (boxes[:, 3] > boxes[:, 1]).all() and (boxes[:, 4] > boxes[:, 2]).all()
        assert (boxes[:, 1:] >= 0).all() and (boxes[:, [1, 3]] <= 160).all() and (boxes[:, [2, 4]] <= 96).all()


def test_deterministic_per_seed_and_index():
    a, b = SyntheticDriving(4, size=(64, 96), seed=3), SyntheticDriving(4, size=(64, 96), seed=3)
    for key in ("image", "boxes", "drivable", "lane"):
        assert torch.equal(a[2][key], b[2][key])
    assert not torch.equal(a[1]["image"], a[2]["image"])
    assert not torch.equal(a[1]["image"], SyntheticDriving(4, size=(64, 96), seed=4)[1]["image"])


def test_scenes_have_road_lanes_and_vehicles():
    data = SyntheticDriving(30, size=(96, 160), seed=1)
    items = [data[i] for i in range(len(data))]
    drivable = torch.stack([it["drivable"] for it in items]).float().mean()
    lane = torch.stack([it["lane"] for it in items]).float().mean()
    boxes = sum(len(it["boxes"]) for it in items)
    assert 0.1 < drivable < 0.6
    assert 0.003 < lane < 0.1
    assert boxes >= 30
    # Lane paint lies on the road surface's rows: nothing is labelled in the top 30% (always sky).
    assert all(it["lane"][: int(96 * 0.3)].sum() == 0 and it["drivable"][: int(96 * 0.3)].sum() == 0 for it in items)


def test_bad_arguments():
    with pytest.raises(ValueError, match="length"):
        SyntheticDriving(-1)
    with pytest.raises(ValueError, match="size"):
        SyntheticDriving(2, size=(16, 16))
    with pytest.raises(IndexError):
        SyntheticDriving(2)[5]


def test_loader_collates_variable_boxes_with_image_index():
    data = SyntheticDriving(6, size=(64, 96), seed=0)
    batch = next(iter(loader(data, batch_size=3)))
    assert batch["image"].shape == (3, 3, 64, 96)
    assert batch["drivable"].shape == batch["lane"].shape == (3, 64, 96)
    expected = torch.cat([torch.cat((torch.full((len(data[i]["boxes"]), 1), float(i)), data[i]["boxes"]), 1)
                          for i in range(3)])
    assert torch.equal(batch["boxes"], expected)
    with pytest.raises(ValueError, match="batch_size"):
        loader(data, batch_size=0)
