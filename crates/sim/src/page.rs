//! The approval web page a person opens at `verification_url` (plain HTML, no script).

use crate::config::UserConfig;

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
.note {{ color: #666; font-size: .9rem; }}
input[type=text] {{ font-size: 1.6rem; letter-spacing: .2rem; text-transform: uppercase; width: 12rem; padding: .3rem; }}
select {{ font-size: 1rem; padding: .2rem; }}
button {{ font-size: 1rem; padding: .5rem 1.2rem; margin-right: .5rem; }}
.ok {{ color: #17692a; }} .bad {{ color: #a11; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The form: a code box (pre-filled from `setCode?devcode=`), who approves, Accept and Deny.
pub(crate) fn form(
    location: &str,
    users: &[UserConfig],
    approver: Option<&str>,
    code: &str,
    message: Option<(&str, bool)>,
) -> String {
    let options: String = users
        .iter()
        .map(|u| {
            let selected = if Some(u.name.as_str()) == approver {
                " selected"
            } else {
                ""
            };
            format!(
                r#"<option value="{n}"{selected}>{n} ({l})</option>"#,
                n = escape(&u.name),
                l = escape(&u.location)
            )
        })
        .collect();
    let message = message
        .map(|(m, ok)| format!(r#"<p class="{}">{}</p>"#, if ok { "ok" } else { "bad" }, escape(m)))
        .unwrap_or_default();
    layout(
        "Zoho simulator: connect a device",
        &format!(
            r#"<h1>Connect a device</h1>
<p class="note">Zoho Accounts simulator, data centre <b>{location}</b>. Nothing here talks to Zoho.</p>
{message}
<form method="post" action="/oauth/v3/device">
<p><label>Code shown on the device<br>
<input type="text" name="user_code" value="{code}" autocomplete="off" autofocus required></label></p>
<p><label>Signed in as<br><select name="user">{options}</select></label></p>
<p><button type="submit" name="action" value="accept">Accept</button>
<button type="submit" name="action" value="deny">Deny</button></p>
</form>"#,
            location = escape(location),
            code = escape(code),
        ),
    )
}

/// The page after a decision.
pub(crate) fn done(accepted: bool, code: &str, user: &str) -> String {
    let (title, text) = if accepted {
        (
            "Device connected",
            format!("Code {} approved as {}. You can return to your device.", code, user),
        )
    } else {
        (
            "Access denied",
            format!("Code {code} was denied. The device will stop waiting."),
        )
    };
    layout(
        title,
        &format!(
            r#"<h1 class="{}">{}</h1><p>{}</p><p><a href="/oauth/v3/device">Connect another device</a></p>"#,
            if accepted { "ok" } else { "bad" },
            escape(title),
            escape(&text)
        ),
    )
}

/// The body of an injected HTML error page.
pub(crate) fn error_page(status: u16) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} Service Unavailable</title></head>\n\
         <body><h1>{status}</h1><p>The server is temporarily unable to service your request. \
         Please try again later.</p><hr><address>Zoho Web Server</address></body></html>\n"
    )
}
