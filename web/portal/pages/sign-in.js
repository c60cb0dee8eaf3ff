import { signIn } from "../api.js";
import { el, showError } from "../ui.js";

export function render(main, { go }) {
  const key = el("input", { id: "key", name: "key", autocomplete: "username", required: true });
  const secret = el("input", { id: "secret", name: "secret", type: "password",
                               autocomplete: "current-password", required: true });
  const button = el("button", { type: "submit" }, "Sign in");
  const form = el("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    showError(form, null);
    try {
      const s = await signIn(key.value.trim(), secret.value);
      const next = new URLSearchParams(location.search).get("next");
      go(next && next.startsWith("/portal/customers/") ? next : `/portal/customers/${s.customerId}/`, true);
    } catch (err) {
      showError(form, err, "Sign-in failed");
      button.disabled = false;
      secret.focus();
    }
  } },
    el("h1", {}, "Sign in to Quire"),
    el("p", { class: "muted" }, "Use an API key and its secret. An administrator (customer 1) can then look after every customer."),
    el("div", { class: "field" }, el("label", { for: "key" }, "Key"), key),
    el("div", { class: "field" }, el("label", { for: "secret" }, "Secret"), secret),
    button);
  main.append(form);
  key.focus();
}
