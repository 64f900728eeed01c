"""Deliverable formats, read back with tools nobody here wrote: ffprobe (FFmpeg) and OpenEXR.

One small clip (128x72, 12 frames at 24000/1001 fps, BT.709, stereo AAC) is made once and exported to every format
through the ``ray32 export`` command; the tests then probe what was written.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import write_clip as _write_clip

from ray32 import color
from ray32.export import ExportError, available_formats, export_stream, open_writer

FPS = Fraction(24000, 1001)
N = 12
W, H = 128, 72
FORMATS = ["draft", "hdr10", "hlg", "prores", "exr"]

# Published reference values (independent of OCIO): SMPTE ST 2084 code of 100 and 203 nits; ITU-R BT.2408 HLG
# reference white; Rec.709 red in ACES AP1 (ACEScg); AP1/AP0 chromaticities from SMPTE ST 2065-1 / S-2014-004.
PQ_100_NITS = 0.5081
PQ_203_NITS = 0.5807
HLG_203_NITS = 0.75
REC709_RED_IN_ACESCG = (0.6131, 0.0702, 0.0206)
AP1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)


# ----------------------------------------------------------------------------------------------------- helpers

def patch_image(index: int) -> np.ndarray:
    """White patch (top-left), mid grey (top-right), pure red (bottom-left), a moving ramp (bottom-right)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2, : W // 2] = 255
    img[: H // 2, W // 2:] = 128
    img[H // 2:, : W // 2] = (255, 0, 0)
    ramp = ((np.arange(W // 2) * 4 + index * 8) % 256).astype(np.uint8)
    img[H // 2:, W // 2:] = ramp[None, :, None]
    return img


def write_clip(path: Path, *, frames: int = N, audio: bool = True) -> Path:
    """The export tests' source: BT.709-tagged H.264 at 24000/1001 fps (near-lossless) with a stereo tone."""
    return _write_clip(path, frames=frames, width=W, height=H, fps=FPS, color=(1, 1, 1), audio=audio,
                            options={"crf": "1", "g": "6"}, images=(patch_image(i) for i in range(frames)))


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def streams(path: Path) -> dict[str, dict]:
    """codec_type -> the first such stream, with nb_read_frames counted by decoding."""
    data = ffprobe(path, "-count_frames", "-show_streams")
    result = {}
    for s in data["streams"]:
        result.setdefault(s["codec_type"], s)
    return result


def first_frame_side_data(path: Path) -> dict[str, dict]:
    data = ffprobe(path, "-select_streams", "v", "-read_intervals", "%+#1", "-show_frames",
                   "-show_entries", "frame=side_data_list")
    return {sd["side_data_type"]: sd for sd in data["frames"][0].get("side_data_list", [])}


def assert_timing(path: Path, frames: int = N) -> None:
    """Frame count, rate, duration and every frame's timestamp equal the source's (exact fractions)."""
    v = streams(path)["video"]
    assert int(v["nb_read_frames"]) == frames
    assert Fraction(v["r_frame_rate"]) == FPS
    tb = Fraction(v["time_base"])
    assert Fraction(int(v["duration_ts"])) * tb == Fraction(frames) / FPS
    pts = ffprobe(path, "-select_streams", "v", "-show_entries", "frame=pts", "-show_frames")["frames"]
    times = sorted(Fraction(int(f["pts"])) * tb for f in pts)
    assert times == [Fraction(i) / FPS for i in range(frames)]


def decode_rgb48(path: Path, index: int = 0) -> np.ndarray:
    """Frame ``index`` of a video as full-range RGB floats 0..1 (FFmpeg's decoder and swscale)."""
    import av

    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb48le").astype(np.float64) / 65535
    raise AssertionError("frame not found")


def patch(img: np.ndarray, which: str) -> np.ndarray:
    """Mean RGB in the centre of a test_image patch."""
    h, w = img.shape[:2]
    y0, x0 = {"white": (0, 0), "grey": (0, w // 2), "red": (h // 2, 0)}[which]
    return img[y0 + h // 8: y0 + h * 3 // 8, x0 + w // 8: x0 + w * 3 // 8].reshape(-1, 3).mean(axis=0)


def read_exr(path: Path):
    import OpenEXR

    f = OpenEXR.File(str(path), separate_channels=True)
    return f.header(), f.channels()


# ----------------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("src") / "clip.mp4")


@pytest.fixture(scope="module")
def exported(clip, tmp_path_factory) -> dict[str, Path]:
    """Every format written once by the command line: ``ray32 export clip --to ... --out DIR``."""
    from flows.cli import main

    out = tmp_path_factory.mktemp("out")
    assert main(["export", str(clip), "--to", ",".join(FORMATS), "--out", str(out), "--hdr-preset",
                 "ultrafast"]) == 0
    return {"draft": out / "clip_draft.mp4", "hdr10": out / "clip_hdr10.mp4", "hlg": out / "clip_hlg.mp4",
            "prores": out / "clip_prores.mov", "exr": out / "clip_exr", "dir": out}


# ----------------------------------------------------------------------------------------------------- registry

def test_every_format_is_available_here():
    assert available_formats() == FORMATS


def test_unknown_format_lists_the_available_ones(tmp_path, capsys):
    with pytest.raises(ExportError, match=r"unknown export format 'mov4k'; available: draft, hdr10, hlg, prores, exr"):
        open_writer("mov4k", tmp_path, stem="x", fps=FPS, frame_count=N, width=W, height=H)
    from flows.cli import main

    assert main(["export", "nothing.mp4", "--to", "draft,webm", "--out", str(tmp_path)]) == 2
    assert "unknown export format 'webm'; available: draft, hdr10, hlg, prores, exr" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_names_what_the_format_accepts(tmp_path):
    with pytest.raises(ExportError, match=r"draft: unknown option\(s\) colour; draft accepts: size \(default 'source'\)"):
        open_writer("draft", tmp_path, stem="x", fps=FPS, frame_count=N, width=W, height=H, colour="p3")


def test_float_fps_is_refused(tmp_path):
    with pytest.raises(ExportError, match="fps must be a Fraction"):
        open_writer("draft", tmp_path, stem="x", fps=23.976, frame_count=N, width=W, height=H)


# ----------------------------------------------------------------------------------------------------- formats

def test_all_outputs_exist_and_nothing_else(exported):
    names = sorted(p.name for p in exported["dir"].iterdir())
    assert names == ["clip_draft.mp4", "clip_exr", "clip_hdr10.mp4", "clip_hlg.mp4", "clip_prores.mov"]


def test_draft_is_h264_bt709_with_source_timing_and_audio(exported):
    s = streams(exported["draft"])
    v, a = s["video"], s["audio"]
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (v["color_primaries"], v["color_transfer"], v["color_space"], v["color_range"]) == \
        ("bt709", "bt709", "bt709", "tv")
    assert (v["width"], v["height"]) == (W, H)
    assert (a["codec_name"], int(a["sample_rate"]), int(a["channels"])) == ("aac", 48000, 2)
    assert abs(float(a["duration"]) - float(N / FPS)) < 0.025
    assert_timing(exported["draft"])
    rgb = decode_rgb48(exported["draft"])
    np.testing.assert_allclose(patch(rgb, "white"), 1.0, atol=0.02)
    np.testing.assert_allclose(patch(rgb, "grey"), 128 / 255, atol=0.02)


def test_hdr10_is_main10_pq_with_mastering_display_and_light_levels(exported):
    s = streams(exported["hdr10"])
    v = s["video"]
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("hevc", "Main 10", "yuv420p10le")
    assert (v["color_primaries"], v["color_transfer"], v["color_space"]) == ("bt2020", "smpte2084", "bt2020nc")
    assert s["audio"]["codec_name"] == "aac"
    assert_timing(exported["hdr10"])
    sd = first_frame_side_data(exported["hdr10"])
    md = sd["Mastering display metadata"]
    # P3-D65 primaries, D65 white, 1000 nits peak.
    assert (md["red_x"], md["green_y"], md["white_point_x"]) == ("34000/50000", "34500/50000", "15635/50000")
    assert Fraction(md["max_luminance"]) == 1000
    cll = sd["Content light level metadata"]
    # SDR white at BT.2408's 203 nits is the brightest pixel; the frame average lies between black and white.
    assert cll["max_content"] == 203
    assert 30 < cll["max_average"] < 203
    rgb = decode_rgb48(exported["hdr10"])
    np.testing.assert_allclose(patch(rgb, "white"), PQ_203_NITS, atol=0.006)


def test_hlg_is_main10_arib_b67_with_white_at_75_percent(exported):
    s = streams(exported["hlg"])
    v = s["video"]
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("hevc", "Main 10", "yuv420p10le")
    assert (v["color_primaries"], v["color_transfer"], v["color_space"]) == ("bt2020", "arib-std-b67", "bt2020nc")
    assert s["audio"]["codec_name"] == "aac"
    assert_timing(exported["hlg"])
    np.testing.assert_allclose(patch(decode_rgb48(exported["hlg"]), "white"), HLG_203_NITS, atol=0.006)


def test_prores_422hq_is_10bit_mov_with_pcm_audio(exported):
    s = streams(exported["prores"])
    v, a = s["video"], s["audio"]
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("prores", "HQ", "yuv422p10le")
    assert (v["color_primaries"], v["color_transfer"], v["color_space"]) == ("bt709", "bt709", "bt709")
    assert (a["codec_name"], int(a["bits_per_sample"])) == ("pcm_s24le", 24)
    assert Fraction(a["duration_ts"]) / int(a["sample_rate"]) == pytest.approx(float(N / FPS), abs=1 / 48000)
    assert_timing(exported["prores"])
    np.testing.assert_allclose(patch(decode_rgb48(exported["prores"]), "grey"), 128 / 255, atol=0.01)


def test_prores_4444(clip, tmp_path):
    from flows.commands.export import export_file

    paths = export_file(clip, ["prores"], tmp_path, options={"prores": {"profile": "4444"}})
    v = streams(paths["prores"])["video"]
    assert (v["codec_name"], v["profile"]) == ("prores", "4444")
    # 4:4:4 from 10-bit input; FFmpeg's ProRes decoder reports 4444 streams at 12 bits (its output format).
    assert v["pix_fmt"] in ("yuv444p10le", "yuv444p12le")
    assert_timing(paths["prores"])


def test_exr_sequence_is_half_acescg_with_chromaticities(exported):
    import OpenEXR

    files = sorted(exported["exr"].iterdir())
    assert [f.name for f in files] == [f"clip.{i:06d}.exr" for i in range(N)]
    header, channels = read_exr(files[0])
    assert sorted(channels) == ["B", "G", "R"]
    assert all(c.pixels.dtype == np.float16 and c.pixels.shape == (H, W) for c in channels.values())
    assert all(c.type() == OpenEXR.HALF for c in channels.values())
    assert header["compression"] == OpenEXR.DWAB_COMPRESSION
    np.testing.assert_allclose(header["chromaticities"], AP1, atol=1e-6)
    assert header["framesPerSecond"] == FPS or tuple(header["framesPerSecond"]) == (24000, 1001)
    rgb = np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float32)
    np.testing.assert_allclose(patch(rgb, "white"), 1.0, atol=0.01)  # SDR white is scene-linear 1.0
    np.testing.assert_allclose(patch(rgb, "red"), REC709_RED_IN_ACESCG, atol=0.01)


@pytest.mark.parametrize("space,compression,chroma", [("ACEScg", "none", AP1), ("ACES2065-1", "zip", AP0),
                                                      ("ACEScg", "piz", AP1)])
def test_exr_known_srgb_patch_lands_on_ocio_value(clip, tmp_path, space, compression, chroma):
    """sRGB-encoded patches written as EXR equal what OCIO computes for sRGB -> the space (within half float)."""
    import OpenEXR
    import PyOpenColorIO as OCIO

    from ray32.shot import probe

    srgb = dataclasses.replace(probe(clip), color_transfer="iec61966-2-1")  # code values are sRGB-encoded
    patches = np.array([[255, 255, 255], [118, 118, 118], [255, 0, 0], [40, 170, 220]], np.uint8)
    frame = np.repeat(np.repeat(patches[None], 8, axis=0), 8, axis=1)  # (8, 32, 3): four 8x8 patches
    w = open_writer("exr", tmp_path, stem="p", fps=FPS, frame_count=1, width=32, height=8, source=srgb,
                    space=space, compression=compression)
    w.write(frame[None])
    folder = w.close()
    header, channels = read_exr(folder / "p.000000.exr")
    assert header["compression"] == {"none": OpenEXR.NO_COMPRESSION, "zip": OpenEXR.ZIP_COMPRESSION,
                                     "piz": OpenEXR.PIZ_COMPRESSION}[compression]
    np.testing.assert_allclose(header["chromaticities"], chroma, atol=1e-6)
    got = np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float32)[4, 4::8]

    cfg = OCIO.Config.CreateFromBuiltinConfig("studio-config-latest")
    expected = (patches / 255).astype(np.float32)
    cfg.getProcessor("sRGB Encoded Rec.709 (sRGB)", space).getDefaultCPUProcessor().applyRGB(expected)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)
    if space == "ACEScg":
        np.testing.assert_allclose(got[0], 1.0, atol=2e-3)
        np.testing.assert_allclose(got[1], 0.1812, atol=2e-3)  # sRGB 118 is 18 % grey
        np.testing.assert_allclose(got[2], REC709_RED_IN_ACESCG, atol=2e-3)


def test_exr_chromaticities_agree_with_ocio_matrix():
    """The header's AP1/AP0 chromaticities give the same ACEScg -> ACES2065-1 matrix that OCIO uses."""
    from ray32.export.exr import chromaticities

    def rgb_to_xyz(c):
        xy = np.array(c).reshape(4, 2)
        xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in xy]).T
        s = np.linalg.solve(xyz[:, :3], xyz[:, 3])
        return xyz[:, :3] * s

    m = np.linalg.inv(rgb_to_xyz(chromaticities("ACES2065-1"))) @ rgb_to_xyz(chromaticities("ACEScg"))
    ocio = np.eye(3, dtype=np.float32).copy()
    color.processor("ACEScg", "ACES2065-1").applyRGB(ocio)
    np.testing.assert_allclose(m, ocio.T, atol=1e-4)


def test_float_linear_frames_are_accepted(tmp_path):
    """Engines may hand float32 linear ACEScg: an EXR keeps the values, the draft encodes 1.0 as white."""
    frames = np.zeros((2, 16, 16, 3), np.float32)
    frames[:, :8] = 1.0
    frames[:, 8:] = 0.18
    paths = export_stream(["exr", "draft"], [frames], tmp_path, stem="f", fps=FPS, frame_count=2, width=16,
                          height=16)
    _, channels = read_exr(paths["exr"] / "f.000001.exr")
    r = channels["R"].pixels.astype(np.float32)
    assert r[2, 2] == pytest.approx(1.0, abs=1e-3) and r[12, 2] == pytest.approx(0.18, abs=1e-3)
    rgb = decode_rgb48(paths["draft"])
    assert rgb[2, 2].mean() == pytest.approx(1.0, abs=0.02)
    assert "audio" not in streams(paths["draft"])


# ----------------------------------------------------------------------------------------------------- colour

def test_display_spaces_put_sdr_white_at_203_nits():
    """The config's PQ display space has 1.0 = 100 nits; SDR -> HDR scales by 2.03 (BT.2408)."""
    assert color.white_scale(color.SDR_SPACE, color.PQ_SPACE) == pytest.approx(2.03)
    assert color.white_scale(color.PQ_SPACE, color.HLG_SPACE) == 1.0
    assert color.white_scale(color.HLG_SPACE, color.SDR_SPACE) == pytest.approx(1 / 2.03)
    white = np.full((1, 1, 1, 3), 255, np.uint8)
    pq_plain = color.Converter(color.SDR_SPACE, color.PQ_SPACE, out_dtype="float32")(white)
    assert pq_plain[0, 0, 0, 0] == pytest.approx(PQ_100_NITS, abs=2e-4)
    for space, expected in ((color.PQ_SPACE, PQ_203_NITS), (color.HLG_SPACE, HLG_203_NITS)):
        conv = color.Converter(color.SDR_SPACE, space, scale=color.white_scale(color.SDR_SPACE, space),
                               out_dtype="float32")
        assert conv(white)[0, 0, 0, 0] == pytest.approx(expected, abs=5e-4)
    assert color.pq_nits_lut()[1023] == pytest.approx(10000, rel=1e-3)


def test_decode_lut_still_works():
    lut = color.decode_lut("bt709", "bt709")
    assert lut[0] == 0 and lut[255] == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------------------------------- timing

def test_trimmed_export_keeps_frames_audio_and_numbers(clip, tmp_path):
    from flows.commands.export import export_file

    paths = export_file(clip, ["draft", "exr"], tmp_path, start="4f", end="10f")
    assert_timing(paths["draft"], frames=6)
    a = streams(paths["draft"])["audio"]
    assert abs(float(a["duration"]) - float(6 / FPS)) < 0.025
    assert [f.name for f in sorted(paths["exr"].iterdir())] == [f"clip.{i:06d}.exr" for i in range(4, 10)]


# ----------------------------------------------------------------------------------------------------- bad requests

@pytest.mark.parametrize("fmt,size,needs", [("draft", (65, 48), "odd width"), ("hdr10", (64, 47), "odd height"),
                                            ("hlg", (63, 47), "odd width and height"),
                                            ("prores", (63, 48), "odd width")])
def test_odd_sizes_for_subsampled_formats_fail_clearly(tmp_path, fmt, size, needs):
    with pytest.raises(ExportError, match=f"{fmt}: {size[0]}x{size[1]} has an {needs}; 4:2:[02] video needs even"):
        open_writer(fmt, tmp_path / "o", stem="x", fps=FPS, frame_count=N, width=size[0], height=size[1])
    assert not (tmp_path / "o").exists()


def test_odd_size_is_fine_where_the_format_allows_it(tmp_path):
    w = open_writer("prores", tmp_path, stem="x", fps=FPS, frame_count=1, width=63, height=47, profile="4444")
    w.write(np.zeros((1, 47, 63, 3), np.uint8))
    assert streams(w.close())["video"]["width"] == 63


def test_unwritable_output_folder_fails_clearly(tmp_path, clip, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=r"cannot write to output folder .*a-file/out: .*; choose a folder you can"):
        open_writer("exr", blocker / "out", stem="x", fps=FPS, frame_count=N, width=W, height=H)
    from flows.cli import main

    assert main(["export", str(clip), "--to", "draft", "--out", str(blocker / "out")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_failing_writer_leaves_no_files(tmp_path):
    """Wrong frames half-way: every writer of the call is aborted, nothing (not even temp files) remains."""
    def chunks():
        yield np.zeros((4, H, W, 3), np.uint8)
        yield np.zeros((4, H, W + 2, 3), np.uint8)  # wrong size

    with pytest.raises(ExportError, match=r"frames must have shape \(n, 72, 128, 3\)"):
        export_stream(FORMATS, chunks(), tmp_path, stem="bad", fps=FPS, frame_count=N, width=W, height=H)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_source_leaves_no_files(tmp_path):
    def chunks():
        yield np.zeros((4, H, W, 3), np.uint8)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        export_stream(["hdr10", "exr", "draft"], chunks(), tmp_path, stem="bad", fps=FPS, frame_count=N, width=W,
                      height=H)
    assert list(tmp_path.iterdir()) == []


def test_too_few_frames_is_an_error_and_removes_the_output(tmp_path):
    with pytest.raises(ExportError, match=r"prores: 4 frames were written but 12 were announced"):
        export_stream(["prores", "exr"], [np.zeros((4, H, W, 3), np.uint8)], tmp_path, stem="short", fps=FPS,
                      frame_count=N, width=W, height=H)
    assert list(tmp_path.iterdir()) == []


def test_too_many_frames_is_an_error(tmp_path):
    w = open_writer("draft", tmp_path, stem="x", fps=FPS, frame_count=2, width=W, height=H)
    with pytest.raises(ExportError, match="draft: got more frames than the 2 announced"):
        w.write(np.zeros((3, H, W, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_the_8bit_table_gives_the_same_codes_as_ocio():
    """Long streams look 8-bit codes up in a table of OCIO's results; it must equal converting directly."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    for dst, dtype in ((color.PQ_SPACE, "uint16"), ("ACEScg", "float16")):
        direct = color.Converter(color.SDR_SPACE, dst, scale=color.white_scale(color.SDR_SPACE, dst), out_dtype=dtype)
        tabled = color.Converter(color.SDR_SPACE, dst, scale=color.white_scale(color.SDR_SPACE, dst), out_dtype=dtype)
        tabled.use_table()
        np.testing.assert_array_equal(tabled(frames), direct(frames))


# ----------------------------------------------------------------------------------------------------- HDR source

def write_pq_clip(path: Path, frames: int = 6) -> Path:
    """A 10-bit PQ BT.2020 clip: left half at the PQ code of 1000 nits, right half at 203 nits."""
    import av

    conv = color.Converter(color.WORKING_SPACE, color.PQ_SPACE, out_dtype="uint16")
    nits = np.zeros((48, 64, 3), np.float32)
    nits[:, :32] = 10.0   # 1000 nits (1.0 = 100 nits in the config's display spaces)
    nits[:, 32:] = 2.03   # 203 nits
    codes = conv(nits)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p10le"
        s.options = {"crf": "4", "x265-params": "log-level=error"}
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(codes, format="rgb48le").reformat(
                format="yuv420p10le", dst_colorspace="BT2020", dst_color_range="MPEG")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_hdr_source_keeps_its_levels(tmp_path):
    """A PQ source: HDR10 keeps 1000 and 203 nits (and says MaxCLL ~1000), HLG puts 1000 nits at its peak,
    the SDR draft puts 203 nits at white."""
    from flows.commands.export import export_file

    src = write_pq_clip(tmp_path / "pq.mp4")
    paths = export_file(src, ["hdr10", "hlg", "draft"], tmp_path / "out", options={"hdr10": {"preset": "ultrafast"}})
    pq = decode_rgb48(paths["hdr10"])
    nits = color.pq_nits_lut(65536)
    left, right = pq[16:32, 4:28].mean(), pq[16:32, 36:60].mean()
    assert nits[round(left * 65535)] == pytest.approx(1000, rel=0.06)
    assert nits[round(right * 65535)] == pytest.approx(203, rel=0.06)
    assert right == pytest.approx(PQ_203_NITS, abs=0.006)
    cll = first_frame_side_data(paths["hdr10"])["Content light level metadata"]
    assert cll["max_content"] == pytest.approx(1000, rel=0.08)
    hlg = decode_rgb48(paths["hlg"])
    assert hlg[16:32, 4:28].mean() == pytest.approx(1.0, abs=0.01)
    assert hlg[16:32, 36:60].mean() == pytest.approx(HLG_203_NITS, abs=0.01)
    sdr = decode_rgb48(paths["draft"])
    assert sdr[16:32, 36:60].mean() == pytest.approx(1.0, abs=0.02)


def test_draft_size_option(clip, tmp_path):
    from flows.commands.export import export_file

    paths = export_file(clip, ["draft"], tmp_path, options={"draft": {"size": "36p", "quality": "fast"}})
    v = streams(paths["draft"])["video"]
    assert (v["width"], v["height"]) == (64, 36)
    assert_timing(paths["draft"])
    with pytest.raises(ExportError, match="draft: size 'half' is not understood; use 'source', a height like '540p'"):
        open_writer("draft", tmp_path, stem="x", fps=FPS, frame_count=N, width=W, height=H, size="half")
