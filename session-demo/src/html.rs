//! The pages, as plain HTML strings. Every value from a user or a session goes
//! through [`escape`].

use std::fmt::Write as _;

use crate::csrf;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What every page shows around its content.
pub struct Frame<'a> {
    /// The page title.
    pub title: &'a str,
    /// The logged-in user, if any.
    pub user: Option<&'a str>,
    /// The session's CSRF token, for the logout button.
    pub csrf: &'a str,
    /// The backend name shown in the footer.
    pub backend: &'a str,
}

/// A whole page around `content` (already HTML).
pub fn page(frame: &Frame<'_>, content: &str) -> String {
    let account = match frame.user {
        Some(user) => format!(
            r#"<span id="user">Signed in as <b>{}</b></span>
<form method="post" action="/logout" class="inline">{}<button id="logout">Log out</button></form>"#,
            escape(user),
            hidden_csrf(frame.csrf)
        ),
        None => r#"<a id="login-link" href="/login">Log in</a>"#.to_owned(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · session demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
nav {{ display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #ccc; padding-bottom: .5rem; }}
nav .account {{ margin-left: auto; display: flex; gap: .5rem; align-items: center; }}
form.inline {{ display: inline; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; }}
footer {{ margin-top: 2rem; color: #777; font-size: .85rem; }}
</style></head>
<body>
<nav><a href="/">Home</a><a href="/cart">Cart</a><a href="/counter">Visits</a><a href="/session">Session</a>
<span class="account">{account}</span></nav>
<h1>{title}</h1>
{content}
<footer>Backend: {backend}</footer>
</body></html>"#,
        title = escape(frame.title),
        backend = escape(frame.backend),
    )
}

/// The hidden CSRF field every form carries.
pub fn hidden_csrf(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        csrf::FORM_FIELD,
        escape(token)
    )
}

/// The home page content: who is logged in, with which role, and the form that
/// switches the role (to `user` for an admin; to `admin` for one of the
/// `--admin-users` who dropped it).
pub fn home(csrf: &str, user: Option<&str>, role: Option<&str>, may_be_admin: bool) -> String {
    let greeting = match user {
        Some(user) => format!("<p id=\"greeting\">Welcome back, {}.</p>", escape(user)),
        None => "<p id=\"greeting\">You are not logged in.</p>".to_owned(),
    };
    let role_line = match (user, role) {
        (Some(_), Some(role)) => {
            let switch = match role {
                "admin" => Some(("user", "Drop to the user role")),
                _ if may_be_admin => Some(("admin", "Take the admin role")),
                _ => None,
            };
            let form = switch
                .map(|(to, label)| {
                    format!(
                        r#" <form method="post" action="/role" class="inline">{}<input type="hidden" name="role" value="{to}"><button id="switch-role">{label}</button></form>"#,
                        hidden_csrf(csrf)
                    )
                })
                .unwrap_or_default();
            format!(
                "<p>Your role: <b id=\"role\">{}</b>.{form} Changing it gives the session a new id.</p>",
                escape(role)
            )
        }
        _ => String::new(),
    };
    format!(
        "{greeting}{role_line}<ul><li><a href=\"/cart\">Shopping cart</a></li>\
         <li><a href=\"/counter\">Visit counter</a></li>\
         <li><a href=\"/session\">Session expiry and contents</a></li>\
         <li><a href=\"/admin\">Admin page</a> (admins only)</li>\
         <li><a href=\"/api/ping\">Rate-limited API</a> (logged in)</li></ul>"
    )
}

/// The admin page content.
pub fn admin(_csrf: &str, admins: &str) -> String {
    format!(
        "<p id=\"admin\">You are an administrator.</p>\
         <p>Administrators of this demo (<code>--admin-users</code>): {}</p>",
        escape(admins)
    )
}

/// The login form.
pub fn login_form(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p id=\"error\" style=\"color:#b00\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        r#"{error}<form method="post" action="/login">{}
<p><label>User name <input id="username" name="username" required maxlength="{}"></label></p>
<p><label><input type="checkbox" id="remember" name="remember" value="on"> Remember me (a persistent cookie)</label></p>
<p><button id="login">Log in</button></p></form>
<p>Logging in gives the session a new id (against session fixation).</p>"#,
        hidden_csrf(csrf),
        crate::app::MAX_NAME_CHARS,
    )
}

/// The cart page content.
pub fn cart(csrf: &str, items: &[(String, u32)]) -> String {
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("<p id=\"empty\">Your cart is empty.</p>");
    } else {
        out.push_str("<table id=\"cart\"><tr><th>Item</th><th>Quantity</th><th></th></tr>");
        for (item, quantity) in items {
            let _ = write!(
                out,
                r#"<tr class="item"><td class="name">{name}</td><td class="qty">{quantity}</td><td>
<form method="post" action="/cart/remove" class="inline">{csrf}<input type="hidden" name="item" value="{name}"><button>Remove</button></form></td></tr>"#,
                name = escape(item),
                csrf = hidden_csrf(csrf),
            );
        }
        out.push_str("</table>");
    }
    let _ = write!(
        out,
        r#"<form method="post" action="/cart" id="add-form">{}
<p><label>Item <input id="item" name="item" required maxlength="{}"></label> <button id="add">Add to cart</button></p></form>
<p>Each item is its own session key, so items added concurrently (two tabs, two servers) all survive.</p>"#,
        hidden_csrf(csrf),
        crate::app::MAX_NAME_CHARS,
    );
    out
}

/// The visit counter content.
pub fn counter(visits: u64) -> String {
    format!(
        "<p>You have viewed this page <b id=\"visits\">{visits}</b> time(s) in this session.</p>"
    )
}

/// What the session page shows.
pub struct SessionView<'a> {
    /// `expires_at`, formatted.
    pub expires_at: &'a str,
    /// `has_expired`.
    pub has_expired: bool,
    /// Whether the session existed before this request.
    pub exists: bool,
    /// Every entry (the CSRF token masked).
    pub entries: &'a [(String, String)],
    /// The configuration, one `(option, value)` per row.
    pub options: &'a [(&'static str, String)],
}

/// The session page content.
pub fn session(view: &SessionView<'_>) -> String {
    let mut out = format!(
        r#"<table id="expiry"><tr><th>expires_at</th><td id="expires-at">{}</td></tr>
<tr><th>has_expired</th><td id="has-expired">{}</td></tr>
<tr><th>existed before this request</th><td id="exists">{}</td></tr></table>
<h2>Entries</h2>"#,
        escape(view.expires_at),
        view.has_expired,
        view.exists,
    );
    out.push_str("<table id=\"entries\"><tr><th>key</th><th>value (JSON)</th></tr>");
    for (key, value) in view.entries {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    out.push_str("</table><h2>Configuration</h2><table id=\"options\">");
    for (option, value) in view.options {
        let _ = write!(out, "<tr><th>{option}</th><td>{}</td></tr>", escape(value));
    }
    out.push_str("</table>");
    out
}

/// A short message page body (errors, CSRF rejection).
pub fn message(text: &str) -> String {
    format!(
        "<p id=\"message\">{}</p><p><a href=\"/\">Back home</a></p>",
        escape(text)
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }
}
