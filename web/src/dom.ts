// Small DOM helpers: typed lookups and an element builder.

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`#${id} is missing from index.html`);
  return e as T;
}

export const input = (id: string) => byId<HTMLInputElement>(id);
export const select = (id: string) => byId<HTMLSelectElement>(id);
export const button = (id: string) => byId<HTMLButtonElement>(id);

type Child = Node | string | null | undefined | false;

// h("button", {class: "primary", onclick: f}, "Go")
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      e.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "dataset") {
      Object.assign(e.dataset, v as Record<string, string>);
    } else if (v === true) {
      e.setAttribute(k, "");
    } else {
      e.setAttribute(k, String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c);
  }
  return e;
}

// A number input's value, or undefined when empty.
export function optionalNumber(id: string): number | undefined {
  const v = input(id).value.trim();
  if (v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

// A button that needs a second click (within 4 s) to act.
export function confirmButton(label: string, confirmLabel: string,
                              act: () => void, title = ""): HTMLButtonElement {
  const b = h("button", { type: "button", class: "small-btn danger", title }, label);
  let timer: number | undefined;
  b.addEventListener("click", () => {
    if (b.classList.contains("confirm")) {
      window.clearTimeout(timer);
      b.classList.remove("confirm");
      b.textContent = label;
      act();
      return;
    }
    b.classList.add("confirm");
    b.textContent = confirmLabel;
    timer = window.setTimeout(() => {
      b.classList.remove("confirm");
      b.textContent = label;
    }, 4000);
  });
  return b;
}
