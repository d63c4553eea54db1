//! Lane source URIs and the GStreamer branch each one becomes.

use std::path::PathBuf;

use super::CaptureMode;

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Rtsp(String),
    V4l2(PathBuf),
    /// Generated frames (`videotestsrc`), optionally darkened/brightened to exercise the lighting loop.
    Test {
        pattern: String,
        brightness: f64,
    },
}

const TEST_PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "ball",
    "gradient",
    "pinwheel",
    "spokes",
    "circular",
    "checkers-8",
    "colors",
    "gamut",
    "zone-plate",
];

impl Source {
    pub fn parse(uri: &str) -> Result<Self, String> {
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{uri:?}: file URIs need an absolute path (file:///...)"
                ));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if uri.starts_with("rtsp://") || uri.starts_with("rtsps://") {
            return Ok(Self::Rtsp(uri.to_owned()));
        }
        if let Some(dev) = uri.strip_prefix("v4l2://") {
            if !dev.starts_with("/dev/") {
                return Err(format!("{uri:?}: expected v4l2:///dev/videoN"));
            }
            return Ok(Self::V4l2(PathBuf::from(dev)));
        }
        if let Some(opts) = uri.strip_prefix("test:") {
            let (mut pattern, mut brightness) = ("ball".to_owned(), 0.0);
            for kv in opts.split('&').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("pattern", p)) if TEST_PATTERNS.contains(&p) => pattern = p.to_owned(),
                    Some(("pattern", p)) => {
                        return Err(format!(
                            "test pattern {p:?} unknown; one of {}",
                            TEST_PATTERNS.join(", ")
                        ));
                    }
                    Some(("brightness", b)) => {
                        brightness = b
                            .parse::<f64>()
                            .ok()
                            .filter(|v| (-1.0..=1.0).contains(v))
                            .ok_or_else(|| {
                                format!("test brightness {b:?} must be a number in -1..=1")
                            })?
                    }
                    _ => {
                        return Err(format!(
                            "test source option {kv:?} unknown (pattern=, brightness=)"
                        ));
                    }
                }
            }
            return Ok(Self::Test {
                pattern,
                brightness,
            });
        }
        Err(format!(
            "{uri:?}: unsupported source; use file://, rtsp://, v4l2:///dev/videoN or test:"
        ))
    }

    /// Live sources are retried when they fail and keep only their newest frame.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::File(_))
    }

    /// gst-launch description of the branch. Paths and URLs are not spliced into it: they are set as
    /// properties on the element named `src`, so no quoting of user input is involved.
    pub fn launch(&self, width: u32, height: u32, fps: u32, mode: CaptureMode) -> String {
        let caps = format!("video/x-raw,format=I420,width={width},height={height}");
        // Files in benchmark mode deliver every frame as fast as they decode; everything else keeps
        // only the newest frame so a slow GPU stage never builds a queue.
        let every = !self.is_live() && mode == CaptureMode::Benchmark;
        let sink = if every {
            "appsink name=sink sync=false max-buffers=2 drop=false emit-signals=false".to_owned()
        } else {
            let sync = !self.is_live();
            format!("appsink name=sink sync={sync} max-buffers=1 drop=true emit-signals=false")
        };
        let convert = format!("videoconvert ! videoscale ! {caps}");
        match self {
            Self::File(_) => format!("filesrc name=src ! decodebin ! {convert} ! {sink}"),
            Self::Rtsp(_) => {
                format!("rtspsrc name=src latency=200 ! decodebin ! {convert} ! {sink}")
            }
            Self::V4l2(_) => format!("v4l2src name=src ! decodebin ! {convert} ! {sink}"),
            Self::Test {
                pattern,
                brightness,
            } => format!(
                "videotestsrc name=src is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! videobalance brightness={brightness} ! videoconvert ! {caps} ! {sink}"
            ),
        }
    }

    /// (property, value) to set on the `src` element.
    pub fn src_property(&self) -> Option<(&'static str, String)> {
        match self {
            Self::File(p) => Some(("location", p.display().to_string())),
            Self::Rtsp(u) => Some(("location", u.clone())),
            Self::V4l2(d) => Some(("device", d.display().to_string())),
            Self::Test { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            Source::parse("file:///a/b.mp4"),
            Ok(Source::File("/a/b.mp4".into()))
        );
        assert!(matches!(Source::parse("rtsp://cam/1"), Ok(Source::Rtsp(_))));
        assert_eq!(
            Source::parse("v4l2:///dev/video2"),
            Ok(Source::V4l2("/dev/video2".into()))
        );
        assert_eq!(
            Source::parse("test:pattern=snow&brightness=-0.5"),
            Ok(Source::Test {
                pattern: "snow".into(),
                brightness: -0.5
            })
        );
        assert_eq!(
            Source::parse("test:"),
            Ok(Source::Test {
                pattern: "ball".into(),
                brightness: 0.0
            })
        );
    }

    #[test]
    fn refuses_bad_uris_with_reason() {
        for (uri, want) in [
            ("file://rel.mp4", "absolute"),
            ("http://x", "unsupported"),
            ("v4l2://video0", "/dev/"),
            ("test:pattern=../../x", "unknown"),
            ("test:brightness=9", "-1..=1"),
            ("test:foo=1", "unknown"),
        ] {
            let e = Source::parse(uri).expect_err(uri);
            assert!(e.contains(want), "{uri}: {e}");
        }
    }
}
