// The REST API (/api/v1/), for what the socket does not carry: older pages, reactions,
// room and member lists.
import { config, csrfToken } from "./page.js";

// ``background``: fetched by the page on its own (a member list after an event), not by
// the person: the server does not count it as activity on the session's idle clock.
export async function api(path, { method = "GET", body, background = false } = {}) {
  const headers = { Accept: "application/json" };
  if (background) headers["X-SafeChat-Background"] = "1";
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = csrfToken; // the cookie is HttpOnly; the page carries the token
  }
  const response = await fetch(`${config.urls.api}${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `request failed (${response.status})`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // keep the generic detail
    }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}
