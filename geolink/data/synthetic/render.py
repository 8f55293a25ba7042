"""Headless OpenGL renderer (moderngl on an EGL context): RGB + linear depth, sun shadows.

One merged vertex buffer per location (see :mod:`mesh`), a per-location ground texture, a
per-region material atlas (texture array), a shadow map per sun direction, and two outputs per
frame: sRGB colour and the z-depth in metres along the camera axis (0 where nothing was hit).
Perspective cameras use a pinhole ``K``; the satellite uses an orthographic nadir camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from geolink.data.synthetic import cameras as C
from geolink.data.synthetic.mesh import VERTEX_FLOATS
from geolink.data.synthetic.styles import Grading
from geolink.errors import MissingDependencyError

log = logging.getLogger(__name__)

GL_HINT = (
    "install the Mesa EGL/OpenGL system libraries (Debian/Ubuntu: "
    "`apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`) and the `moderngl` wheel"
)


class GLUnavailableError(MissingDependencyError):
    """No headless OpenGL (EGL) context could be created on this machine."""


VERT = """
#version 330
uniform mat4 u_mvp;
uniform mat4 u_view;
in vec3 in_pos; in vec3 in_nrm; in vec2 in_uv; in vec4 in_rect; in float in_layer;
in vec3 in_tint; in float in_ao; in float in_veg;
out vec3 v_world; out vec3 v_nrm; out vec2 v_uv; flat out vec4 v_rect; flat out float v_layer;
out vec3 v_tint; out float v_ao; out float v_veg; out float v_depth;
void main() {
    vec4 p = vec4(in_pos, 1.0);
    gl_Position = u_mvp * p;
    v_depth = -(u_view * p).z;
    v_world = in_pos; v_nrm = in_nrm; v_uv = in_uv; v_rect = in_rect; v_layer = in_layer;
    v_tint = in_tint; v_ao = in_ao; v_veg = in_veg;
}
"""

FRAG = """
#version 330
%DEFINES%
uniform sampler2D u_ground;
uniform sampler2DArray u_atlas;
uniform sampler2DShadow u_shadow;
uniform mat4 u_light;
uniform float u_shadow_texel;
uniform vec3 u_sun_dir; uniform vec3 u_sun_col; uniform vec3 u_sky_col;
uniform vec3 u_cam; uniform float u_haze_m; uniform float u_haze_offset;
uniform vec3 u_wb; uniform float u_exposure; uniform float u_sat; uniform float u_contrast;
uniform vec3 u_veg_shift;
in vec3 v_world; in vec3 v_nrm; in vec2 v_uv; flat in vec4 v_rect; flat in float v_layer;
in vec3 v_tint; in float v_ao; in float v_veg; in float v_depth;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;

float shadow_at(vec3 n) {
    vec4 q = u_light * vec4(v_world + n * 0.3, 1.0);
    vec3 p = q.xyz / q.w * 0.5 + 0.5;
    if (p.x < 0.0 || p.y < 0.0 || p.x > 1.0 || p.y > 1.0) return 1.0;
    // 4 bilinear-filtered comparisons = a smooth 3x3-texel penumbra
    float s = 0.0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            s += texture(u_shadow, vec3(p.xy + (vec2(i, j) - 0.5) * u_shadow_texel, p.z - 0.0002));
    return s * 0.25;
}

void main() {
    vec3 n = normalize(v_nrm);
#ifdef NADIR
    // walls seen exactly edge-on by the nadir camera have (almost) zero screen area; llvmpipe
    // still emits a few fragments with extrapolated depth for them, so drop them. Only in the
    // nadir program: a discard anywhere disables early depth testing (~10 % slower frames).
    if (abs(n.z) < 0.02 && v_veg < 0.5) discard;
#endif
    vec4 tex;
    float veg = v_veg;
    if (v_layer < 0.0) {
        tex = texture(u_ground, v_uv);
        veg *= tex.a;
    } else {
        vec2 c = fract(v_uv);
        vec2 auv = v_rect.xy + c * v_rect.zw;
        tex = textureGrad(u_atlas, vec3(auv, v_layer), dFdx(v_uv) * v_rect.zw,
                          dFdy(v_uv) * v_rect.zw);
    }
    vec3 albedo = pow(tex.rgb, vec3(2.2)) * v_tint;
    albedo *= mix(vec3(1.0), u_veg_shift, veg);
    float ndl = max(dot(n, u_sun_dir), 0.0);
    float sh = ndl > 0.0 ? shadow_at(n) : 0.0;
    vec3 amb = u_sky_col * (0.55 + 0.45 * n.z) * v_ao;
    vec3 col = albedo * (0.8 * amb + u_sun_col * ndl * sh * mix(1.0, v_ao, 0.4));
    float d = max(length(v_world - u_cam) - u_haze_offset, 0.0);
    col = mix(col, u_sky_col * 0.6, 1.0 - exp(-d / u_haze_m));
    col *= u_exposure * u_wb;
    float lum = dot(col, vec3(0.2126, 0.7152, 0.0722));
    col = max(mix(vec3(lum), col, u_sat), 0.0);
    col = col / (1.0 + 0.25 * col);
    col = pow(col, vec3(1.0 / 2.2));
    col = (col - 0.5) * u_contrast + 0.5;
    f_color = vec4(clamp(col, 0.0, 1.0), 1.0);
    f_depth = v_depth;
}
"""

SHADOW_VERT = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
void main() { gl_Position = u_mvp * vec4(in_pos, 1.0); }
"""
SHADOW_FRAG = "#version 330\nvoid main() {}\n"

ATTRS = ["in_pos", "in_nrm", "in_uv", "in_rect", "in_layer", "in_tint", "in_ao", "in_veg"]
FMT = "3f 3f 2f 4f 1f 3f 1f 1f"


@dataclass
class Light:
    """Sun direction (unit, towards the sun), colour (linear RGB) and sky colour (linear RGB)."""

    sun_dir: np.ndarray
    sun_col: np.ndarray
    sky_col: np.ndarray


def create_context():
    """A standalone EGL OpenGL 3.3+ context, or :class:`GLUnavailableError` with the fix."""
    try:
        import moderngl
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise GLUnavailableError(f"moderngl is not installed: {e}; {GL_HINT}") from e
    try:
        return moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as e:  # moderngl raises plain Exception when EGL/Mesa is missing
        raise GLUnavailableError(f"cannot create a headless OpenGL context ({e}); {GL_HINT}") from e


class Renderer:
    """Renders one location at a time. Not thread-safe; one per process."""

    def __init__(self, shadow_size: int = 2048):
        import moderngl

        self.mgl = moderngl
        self.ctx = create_context()
        self.progs = {
            nadir: self.ctx.program(
                vertex_shader=VERT,
                fragment_shader=FRAG.replace("%DEFINES%", "#define NADIR" if nadir else ""),
            )
            for nadir in (False, True)
        }
        self.vaos: dict[bool, object] = {}
        self.shadow_prog = self.ctx.program(vertex_shader=SHADOW_VERT, fragment_shader=SHADOW_FRAG)
        self.shadow_size = shadow_size
        self.shadow_tex = self.ctx.depth_texture((shadow_size, shadow_size))
        self.shadow_tex.compare_func = "<="
        self.shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.shadow_fbo = self.ctx.framebuffer(depth_attachment=self.shadow_tex)
        self._fbos: dict[tuple[int, int], object] = {}
        self._atlas_key: object = None
        self.atlas = None
        self.ground = None
        self.vbo = None
        self.light_mvp = np.eye(4)

    def set_atlas(self, key: object, atlas: np.ndarray) -> None:
        """Upload a (L, S, S, 3) uint8 material atlas unless ``key`` is already loaded."""
        if key == self._atlas_key:
            return
        if self.atlas is not None:
            self.atlas.release()
        n, s = atlas.shape[0], atlas.shape[1]
        self.atlas = self.ctx.texture_array((s, s, n), 3, np.ascontiguousarray(atlas).tobytes())
        self.atlas.build_mipmaps()
        self.atlas.filter = (self.mgl.LINEAR_MIPMAP_LINEAR, self.mgl.LINEAR)
        self._atlas_key = key

    def set_scene(self, vertices: np.ndarray, ground: np.ndarray, half: float) -> None:
        """Upload a location: (M, VERTEX_FLOATS) float32 triangles, (n, n, 4) uint8 ground."""
        assert vertices.shape[1] == VERTEX_FLOATS
        for obj in (self.ground, self.vbo):
            if obj is not None:
                obj.release()
        n = ground.shape[0]
        self.ground = self.ctx.texture((n, n), 4, np.ascontiguousarray(ground).tobytes())
        self.ground.build_mipmaps()
        self.ground.filter = (self.mgl.LINEAR_MIPMAP_LINEAR, self.mgl.LINEAR)
        self.ground.repeat_x = self.ground.repeat_y = False
        self.vbo = self.ctx.buffer(np.ascontiguousarray(vertices, np.float32).tobytes())
        for nadir, prog in self.progs.items():
            if nadir in self.vaos:
                self.vaos[nadir].release()
            self.vaos[nadir] = self.ctx.vertex_array(prog, [(self.vbo, FMT, *ATTRS)])
        pad = f"{(VERTEX_FLOATS - 3) * 4}x"
        self.shadow_vao = self.ctx.vertex_array(
            self.shadow_prog, [(self.vbo, f"3f {pad}", "in_pos")]
        )
        self.half = half

    def set_sun(self, sun_dir: np.ndarray) -> None:
        """Render the shadow map for a sun direction (unit vector towards the sun)."""
        ext = self.half * 1.15
        eye = np.asarray(sun_dir) * 1500.0
        view = C.gl_view(C.look_at(eye, np.zeros(3), up=(0.0, 1.0, 0.0)))
        self.light_mvp = C.gl_ortho(ext, ext, 1.0, 3000.0) @ view
        self.shadow_fbo.use()
        self.shadow_fbo.clear(depth=1.0)
        self.ctx.enable(self.mgl.DEPTH_TEST)
        self.shadow_prog["u_mvp"].write(self.light_mvp.T.astype("f4").tobytes())
        self.shadow_vao.render()

    def _fbo(self, w: int, h: int):
        if (w, h) not in self._fbos:
            color = self.ctx.texture((w, h), 4)
            depth = self.ctx.texture((w, h), 1, dtype="f4")
            self._fbos[(w, h)] = self.ctx.framebuffer(
                color_attachments=[color, depth],
                depth_attachment=self.ctx.depth_renderbuffer((w, h)),
            )
        return self._fbos[(w, h)]

    def render(
        self,
        view: np.ndarray,
        proj: np.ndarray,
        cam_pos: np.ndarray,
        size: tuple[int, int],
        light: Light,
        grading: Grading,
        veg_shift: tuple[float, float, float] = (1.0, 1.0, 1.0),
        haze_offset: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame. Returns rgb (H, W, 3) uint8, depth (H, W) float32 metres, hit (H, W) bool.

        ``view``/``proj`` are OpenGL matrices (see :mod:`cameras`); row 0 of the outputs is the
        top of the image.
        """
        w, h = size
        fbo = self._fbo(w, h)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(self.mgl.DEPTH_TEST)
        u = {
            "u_mvp": (proj @ view).T.astype("f4").tobytes(),
            "u_view": view.T.astype("f4").tobytes(),
            "u_light": self.light_mvp.T.astype("f4").tobytes(),
            "u_shadow_texel": 1.0 / self.shadow_size,
            "u_sun_dir": light.sun_dir,
            "u_sun_col": light.sun_col,
            "u_sky_col": light.sky_col,
            "u_cam": cam_pos,
            "u_haze_m": grading.haze_m,
            "u_haze_offset": haze_offset,
            "u_wb": grading.white_balance,
            "u_exposure": grading.exposure,
            "u_sat": grading.saturation,
            "u_contrast": grading.contrast,
            "u_veg_shift": veg_shift,
            "u_ground": 0,
            "u_atlas": 1,
            "u_shadow": 2,
        }
        nadir = bool(abs(proj[3, 3] - 1.0) < 1e-9)  # orthographic projection
        self._uniforms(self.progs[nadir], u)
        self.ground.use(0)
        self.atlas.use(1)
        self.shadow_tex.use(2)
        self.vaos[nadir].render()
        rgba = np.frombuffer(fbo.read(components=4, attachment=0), np.uint8).reshape(h, w, 4)
        depth = np.frombuffer(fbo.read(components=1, attachment=1, dtype="f4"), np.float32)
        depth = depth.reshape(h, w)[::-1].copy()
        rgba = rgba[::-1]
        return np.ascontiguousarray(rgba[..., :3]), depth, rgba[..., 3] > 0

    @staticmethod
    def _uniforms(prog, values: dict) -> None:
        for name, v in values.items():
            if name not in prog:  # optimised away by the shader compiler
                continue
            if isinstance(v, bytes):
                prog[name].write(v)
            elif isinstance(v, int):
                prog[name].value = v
            elif np.ndim(v) == 0:
                prog[name].value = float(v)
            else:
                prog[name].value = tuple(float(x) for x in v)

    def release(self) -> None:
        self.ctx.release()
