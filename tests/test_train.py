"""Trainer: runs, logs, checkpoints, resumes exactly, and all-gathers across processes."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from geolink.checkpoint import load_image_encoder
from geolink.config import load_config
from geolink.errors import ConfigError, DataError
from geolink.train.trainer import train

N_LOC = 6


def make_u1652(root, n_loc=N_LOC, drones=3, size=40, seed=0):
    """A tiny University-1652 tree: train/{drone,satellite}, test/{query_drone,gallery_satellite}."""
    rng = np.random.default_rng(seed)
    for i in range(n_loc):
        loc = f"{i:04d}"
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        folders = {
            "train/satellite": 1,
            "train/drone": drones,
            "test/gallery_satellite": 1,
            "test/query_satellite": 1,
            "test/query_drone": drones,
            "test/gallery_drone": drones,
        }
        for folder, n in folders.items():
            d = root / folder / loc
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                noise = rng.integers(-20, 20, base.shape)
                img = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
                name = f"{loc}.jpg" if "satellite" in folder else f"image-{j:02d}.jpg"
                Image.fromarray(img).save(d / name)
    return root


@pytest.fixture
def tiny_data(tmp_path):
    root = make_u1652(tmp_path / "u1652")
    recon = tmp_path / "recon"
    recon.mkdir()
    g = torch.Generator().manual_seed(0)
    feats = {f"{i:04d}": torch.randn(1152, generator=g) for i in range(N_LOC)}
    write_features(recon, feats, load_config("test").model.point)
    return root, recon


def write_features(recon, feats, point_cfg, locations=None):
    """A features file recorded as made with ``point_cfg``'s Point-NN settings."""
    from geolink.recon.features import feature_metadata, features_path, settings_of

    settings = settings_of(point_cfg)
    meta = feature_metadata(settings, point_cfg.num_points, locations or {k: k for k in feats})
    save_file(feats, str(features_path(recon, settings)), metadata=meta)


def cfg_for(root, recon, *extra):
    return load_config(
        "test",
        [
            "data.dataset=university1652",
            f"data.root={root}",
            f"data.points={recon}",
            "train.batch_size=3",
            "train.epochs=2",
            "train.log_every=1",
            "model.image.img_size=28",
            *extra,
        ],
    )


def test_train_writes_run_folder_and_loadable_checkpoints(tiny_data, tmp_path):
    root, recon = tiny_data
    run = train(cfg_for(root, recon), tmp_path / "run")
    for f in (
        "config.yaml",
        "git.txt",
        "metrics.jsonl",
        "checkpoints/last.safetensors",
        "checkpoints/best.safetensors",
        "checkpoints/trainer_state.pt",
    ):
        assert (run / f).is_file(), f
    assert any((run / "tb").iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert len(epochs) == 2 and "val_R@1" in epochs[-1]
    for key in ("loss", "L_cc", "L_sc", "L_rd", "L_ga", "lr", "logit_scale", "img_per_s"):
        assert all(key in r for r in train_rows), key
    enc, meta = load_image_encoder(run / "checkpoints" / "last.safetensors")
    assert enc(torch.randn(1, 3, 28, 28)).shape == (1, 64)
    assert not any(
        k.startswith("module.") for k in load_file(str(run / "checkpoints/last.safetensors"))
    )


def test_resume_reproduces_an_uninterrupted_run(tiny_data, tmp_path):
    root, recon = tiny_data
    cfg = cfg_for(root, recon, "train.eval_every=0")
    full = train(cfg, tmp_path / "full")
    train(cfg, tmp_path / "cut", stop_after_epoch=1)
    resumed = train(cfg, tmp_path / "cut", resume=True)
    a = load_file(str(full / "checkpoints/last.safetensors"))
    b = load_file(str(resumed / "checkpoints/last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # and training changed the weights at all
    first = train(cfg, tmp_path / "one", stop_after_epoch=1)
    c = load_file(str(first / "checkpoints/last.safetensors"))
    assert any(not torch.allclose(a[k], c[k]) for k in a if a[k].is_floating_point())
    rows = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]


def test_baseline_needs_no_points_and_geolink_demands_them(tiny_data, tmp_path):
    root, _ = tiny_data
    run = train(cfg_for(root, "", "model.point.enabled=false", "train.epochs=1"), tmp_path / "b")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("L_rd" not in r and "nce_dro_pc" not in r for r in rows)
    with pytest.raises(ConfigError, match="data.points"):
        train(cfg_for(root, ""), tmp_path / "g")


def _torchrun_env(rank, world, port):
    """The environment torchrun gives each process (read by geolink's init_distributed)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )


def _spawn_two(worker, *args):
    """Run ``worker(rank, 2, port, *args)`` in two processes on a free loopback port."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, *args), nprocs=2, join=True)


def _ddp_worker(rank, world, port, result_file, payload):
    _torchrun_env(rank, world, port)
    import torch.distributed as dist

    from geolink.models.geolink import GeoLink
    from geolink.train.distributed import gather_with_grad

    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    cfg = load_config("test")
    model = GeoLink(cfg.model, cfg.loss).eval()
    drone, sat, pf = payload
    half = drone.shape[0] // world
    sl = slice(rank * half, (rank + 1) * half)
    out = model(drone[sl], sat[sl], point_features=pf[sl], gather=gather_with_grad)
    out["loss"].backward()
    grad = model.logit_scale.grad.clone()
    dist.all_reduce(grad)
    if rank == 0:
        torch.save(
            {"loss": out["loss"].detach(), "L_rd": out["L_rd"].detach(), "grad": grad}, result_file
        )
    # both ranks leave together: tearing gloo down while the peer still talks aborted
    # the process now and then (SIGABRT, "terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def test_all_gather_makes_the_loss_span_the_global_batch(tmp_path):
    from geolink.models.geolink import GeoLink

    torch.manual_seed(1)
    payload = (torch.randn(4, 3, 56, 56), torch.randn(4, 3, 56, 56), torch.randn(4, 1152))
    result = tmp_path / "r.pt"
    _spawn_two(_ddp_worker, str(result), payload)
    got = torch.load(result, weights_only=True)
    torch.manual_seed(0)
    cfg = load_config("test")
    model = GeoLink(cfg.model, cfg.loss).eval()
    out = model(payload[0], payload[1], point_features=payload[2])
    out["loss"].backward()
    torch.testing.assert_close(got["loss"], out["loss"].detach(), rtol=1e-4, atol=1e-5)
    # #14.6: relational distillation sees the gathered (global) batch, so its B^3(B-1) factor
    # (the `mean` form) follows the global batch: the same value as one process on all 4 rows
    torch.testing.assert_close(got["L_rd"], out["L_rd"].detach(), rtol=1e-4, atol=1e-7)
    # DDP averages gradients; the sum over ranks of per-rank grads equals world x the full grad
    torch.testing.assert_close(got["grad"], 2 * model.logit_scale.grad, rtol=1e-3, atol=1e-5)


def _ddp_train_worker(rank, world, port, root, recon, out):
    _torchrun_env(rank, world, port)
    train(cfg_for(root, recon, "train.epochs=1", "train.batch_size=2", "train.eval_every=0"), out)


def test_ddp_training_on_two_cpu_processes_writes_clean_checkpoints(tiny_data, tmp_path):
    """torchrun-style run (2 gloo processes): DDP-wrapped training, rank 0 writes the run."""
    root, recon = tiny_data
    out = tmp_path / "ddp"
    _spawn_two(_ddp_train_worker, str(root), str(recon), str(out))
    sd = load_file(str(out / "checkpoints" / "last.safetensors"))
    assert sd and not any(k.startswith("module.") for k in sd)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1]  # written once, by rank 0
    # the global batch is 2 ranks x 2 = 4 distinct locations: 6 locations x 3 views -> 4 steps
    assert max(r["step"] for r in rows if r["kind"] == "train") >= 1


def _ddp_club_worker(rank, world, port, root, recon, out):
    _torchrun_env(rank, world, port)
    from geolink.train.trainer import Trainer

    cfg = cfg_for(root, recon, "train.epochs=1", "train.batch_size=2", "train.eval_every=0")
    t = Trainer(cfg, out)
    assert t.club_optimizer is not None
    t.fit()
    torch.save(t.model.criterion.state_dict(), os.path.join(out, f"criterion_rank{rank}.pt"))


def test_ddp_ranks_train_one_and_the_same_club_estimator(tiny_data, tmp_path):
    """#14.3: the estimators' own steps ran on each rank's local features and gradients, so
    the ranks' vCLUB estimators drifted apart; their weights must stay equal."""
    root, recon = tiny_data
    out = tmp_path / "ddp"
    out.mkdir()
    _spawn_two(_ddp_club_worker, str(root), str(recon), str(out))
    a, b = (torch.load(out / f"criterion_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a and a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def _extra(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["extra"])


def test_selection_holds_out_training_locations_and_never_reads_test_data(tiny_data, tmp_path):
    from geolink.train.trainer import Trainer

    root, recon = tiny_data
    t = Trainer(cfg_for(root, recon, "train.val_fraction=0.3"), tmp_path / "run")
    held = set(t.val_set.gallery_labels)
    assert len(held) == 2 and not held & {p.location for p in t.pairs}
    assert len({p.location for p in t.pairs}) == N_LOC - 2

    def no_test_data(*a, **k):
        raise AssertionError("model selection read the test split")

    t.dataset.eval_sets = no_test_data
    run = t.fit()
    assert _extra(run / "checkpoints/best.safetensors")["selection"] == "val"
    # the same seed holds out the same locations
    again = Trainer(cfg_for(root, recon, "train.val_fraction=0.3"), tmp_path / "again")
    assert set(again.val_set.gallery_labels) == held


def test_best_never_holds_an_unvalidated_epoch(tiny_data, tmp_path):
    from geolink.train.trainer import Trainer

    root, recon = tiny_data
    t = Trainer(cfg_for(root, recon, "train.eval_every=2"), tmp_path / "r")
    t.epoch = 1
    t._save(50.0)  # a validated epoch
    t.epoch = 2
    t._save(None)  # an epoch without validation: only last moves
    assert _extra(t.ckpt_dir / "best.safetensors")["epoch"] == 1
    assert _extra(t.ckpt_dir / "last.safetensors")["epoch"] == 2
    t.epoch = 3
    t._save(40.0)  # validated but worse
    assert _extra(t.ckpt_dir / "best.safetensors") == {
        "epoch": 1,
        "global_step": 0,
        "metric": 50.0,
        "selection": "val",
    }


def test_select_last_and_unknown_selection(tiny_data, tmp_path):
    root, recon = tiny_data
    run = train(cfg_for(root, recon, "train.select=last", "train.epochs=1"), tmp_path / "l")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any("val_R@1" in r for r in rows)
    assert _extra(run / "checkpoints/best.safetensors") == {
        "epoch": 1,
        "global_step": _extra(run / "checkpoints/last.safetensors")["global_step"],
        "metric": None,
        "selection": "last",
    }
    with pytest.raises(
        ConfigError, match=r"train.select='nope' \(expected one of val, last, test\)"
    ):
        train(cfg_for(root, recon, "train.select=nope"), tmp_path / "x")


def test_train_locations_takes_a_seeded_subset(tiny_data, tmp_path):
    from geolink.train.trainer import Trainer

    root, recon = tiny_data
    over = ["data.train_locations=5", "train.select=last"]
    a = Trainer(cfg_for(root, recon, *over), tmp_path / "a")
    b = Trainer(cfg_for(root, recon, *over), tmp_path / "b")
    locs = {p.location for p in a.pairs}
    assert len(locs) == 5 and locs == {p.location for p in b.pairs}
    with pytest.raises(ConfigError, match="data.train_locations=-1"):
        Trainer(cfg_for(root, recon, "data.train_locations=-1"), tmp_path / "c")


def _recon_folder(path, n_loc=N_LOC, n_points=128, groups=1):
    """A reconstruction folder (manifest + clouds) without running a reconstruction."""
    from geolink.recon.pointcloud import write_ply

    rng = np.random.default_rng(5)
    scenes = {}
    for i in range(n_loc):
        for g in range(groups):
            key = f"{i:04d}" if groups == 1 else f"{i:04d}_group{g}"
            write_ply(path / "points" / f"{key}.ply", rng.uniform(-1, 1, (n_points, 3)))
            scenes[key] = {"status": "ok", "ply": f"points/{key}.ply", "location": f"{i:04d}"}
    (path / "manifest.json").write_text(json.dumps({"scenes": scenes}))
    return path


def test_point_nn_settings_of_the_config_are_the_ones_trained_on(tmp_path):
    """#14.1: training read features made by a default PointNN(), whatever model.point said."""
    from geolink.models.point_nn import PointNN
    from geolink.recon.pointcloud import read_ply
    from geolink.train.trainer import Trainer

    root = make_u1652(tmp_path / "u1652")
    recon = _recon_folder(tmp_path / "recon")
    cloud = torch.from_numpy(read_ply(recon / "points/0003.ply").xyz)[None]
    seen = {}
    for k, std in ((16, "cloud"), (8, "cloud"), (8, "batch")):
        over = [f"model.point.k={k}", f"model.point.lga_std={std}"]
        t = Trainer(cfg_for(root, recon, *over), tmp_path / f"run_{k}_{std}")
        (vec,) = t.points.groups["0003"]
        seen[k, std] = vec
        if std == "cloud":
            torch.testing.assert_close(vec, PointNN(k=k)(cloud.float())[0])
    assert not torch.allclose(seen[16, "cloud"], seen[8, "cloud"])
    assert not torch.allclose(seen[8, "cloud"], seen[8, "batch"])  # one std over 6 clouds
    assert len(list(recon.glob("point_features*.safetensors"))) == 3  # one file per setting
    with pytest.raises(ConfigError, match=r"model.point.num_points=64"):
        Trainer(cfg_for(root, recon, "model.point.num_points=64"), tmp_path / "np")


def test_point_features_without_clouds_name_the_differing_settings(tiny_data, tmp_path):
    from geolink.train.trainer import Trainer

    root, recon = tiny_data  # a features file only (k=16 as the test preset), no clouds
    with pytest.raises(ConfigError, match=r"model.point.k=8 \(cached: 16\)"):
        Trainer(cfg_for(root, recon, "model.point.k=8"), tmp_path / "r")


def test_groups_come_from_the_recorded_locations_not_the_key(tmp_path):
    """A location reconstructed as groups has all its scenes; a location id that itself
    contains '_group' is not cut (the key used to be split at '_group')."""
    from geolink.train.trainer import PointFeatureLookup, Trainer

    root = make_u1652(tmp_path / "u1652")
    recon = _recon_folder(tmp_path / "recon", groups=2)
    t = Trainer(cfg_for(root, recon), tmp_path / "run")
    assert sorted(t.points.groups) == [f"{i:04d}" for i in range(N_LOC)]
    assert all(len(v) == 2 for v in t.points.groups.values())
    lookup = PointFeatureLookup({"river_group7": torch.zeros(3)}, {"river_group7": "river_group7"})
    assert "river_group7" in lookup and "river" not in lookup


def test_resume_refuses_mismatched_state_and_changed_settings(tiny_data, tmp_path):
    """#14.14: a last.safetensors newer than trainer_state.pt resumed on mismatched state, and
    --resume with train.lr=0.01 wrote 0.01 into config.yaml but trained on the saved schedule."""
    import shutil

    root, recon = tiny_data
    cfg = cfg_for(root, recon, "train.eval_every=0", "train.epochs=3")
    run = train(cfg, tmp_path / "run", stop_after_epoch=1)
    saved = run / "checkpoints" / "trainer_state.pt"
    shutil.copy(saved, tmp_path / "state_epoch1.pt")
    with pytest.raises(ConfigError, match=r"train.lr: 0.0003 -> 0.01"):
        train(cfg_for(root, recon, "train.eval_every=0", "train.epochs=3", "train.lr=0.01"),
              run, resume=True)  # fmt: skip
    assert "lr: 0.0003" in (run / "config.yaml").read_text()  # the run's record is untouched
    train(cfg, run, resume=True, stop_after_epoch=2)
    shutil.copy(tmp_path / "state_epoch1.pt", saved)  # as if killed between the two writes
    with pytest.raises(DataError, match=r"from epoch 2 .* but .* from epoch 1"):
        train(cfg, run, resume=True)


def test_a_fresh_run_drops_lines_of_an_attempt_killed_before_its_first_checkpoint(
    tiny_data, tmp_path
):
    root, recon = tiny_data
    cfg = cfg_for(root, recon, "train.eval_every=0")
    clean = train(cfg, tmp_path / "clean")
    run = tmp_path / "run"
    run.mkdir()
    stale = {"kind": "train", "epoch": 0, "step": 1, "loss": 99.0}
    (run / "metrics.jsonl").write_text("".join(json.dumps(stale) + "\n" for _ in range(4)))
    train(cfg, run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((clean / "metrics.jsonl").read_text().splitlines())
    assert all(json.loads(x).get("loss") != 99.0 for x in lines)
