// `podctl ipam release --handle H`: frees every address a handle holds,
// what the CNI plugin's DEL does, for a pod whose DEL never came. Releasing
// a handle that holds nothing is not an error (ipamd treats it the same).

use podroute_proto::ipam::v1::ReleaseResponse;
use serde::Serialize;

use crate::output::{RenderError, View};

/// The JSON field names are a documented, stable schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct ReleaseView {
    pub handle: String,
    /// How many addresses were freed; 0 for an unknown handle.
    pub released: u32,
    pub addresses: Vec<String>,
}

impl ReleaseView {
    pub fn new(handle: String, r: ReleaseResponse) -> Self {
        ReleaseView {
            handle,
            released: r.released,
            addresses: r.addresses,
        }
    }
}

pub fn render_release(release: &ReleaseView, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(release)? {
        return Ok(text);
    }
    Ok(match release.released {
        0 => format!(
            "handle {} holds no addresses: nothing to release\n",
            release.handle
        ),
        n => {
            let plural = if n == 1 { "" } else { "es" };
            let list = if release.addresses.is_empty() {
                String::new()
            } else {
                format!(": {}", release.addresses.join(", "))
            };
            format!(
                "released {n} address{plural} of handle {}{list}\n",
                release.handle
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_was_released() {
        let view = ReleaseView::new(
            "podroute.0123abcd.eth0".into(),
            ReleaseResponse {
                released: 2,
                addresses: vec!["10.244.3.7".into(), "fd00:10:244::7".into()],
            },
        );
        assert_eq!(
            render_release(&view, View::TABLE).unwrap(),
            "released 2 addresses of handle podroute.0123abcd.eth0: 10.244.3.7, fd00:10:244::7\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_release(&view, View::JSON).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "handle": "podroute.0123abcd.eth0",
                "released": 2,
                "addresses": ["10.244.3.7", "fd00:10:244::7"],
            })
        );
    }

    #[test]
    fn an_unknown_handle_is_not_an_error() {
        let view = ReleaseView::new("gone".into(), ReleaseResponse::default());
        assert_eq!(
            render_release(&view, View::TABLE).unwrap(),
            "handle gone holds no addresses: nothing to release\n"
        );
    }
}
