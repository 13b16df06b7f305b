// One editable combobox with a listbox popup (WAI-ARIA APG, "Editable Combobox With List
// Autocomplete"), shared by every field of the page that suggests something as it is
// typed: the composer's @-mentions (autocomplete.js), the "Add a member" username
// (memberpicker.js) and the reaction picker's emoji search (reactions.js).
//
// The field keeps focus throughout; the option shown as selected is named by
// aria-activedescendant (and aria-selected). Down / Up move, wrapping; Enter (and Tab
// where the caller says so) picks; Escape closes the list and only the list; a click
// picks without taking focus from the field. The number of suggestions is announced in
// the page's live region. An <input> carries role="combobox" and aria-expanded; a
// <textarea> may take no role (ARIA in HTML), and a combobox would lose its multi-line
// semantics, so it keeps its textbox role and carries what a textbox may in WAI-ARIA 1.2:
// aria-haspopup="listbox", aria-autocomplete, aria-controls and aria-activedescendant.
import { h, byId } from "./dom.js";
import { announce } from "./notifications.js";

// ``field``: the <input> or <textarea>. ``id``, ``label``: the listbox's id and name.
// ``container``: where the listbox goes (positioned by CSS). ``query(field)``: what to
// suggest for, as { start, text } (start: where the typed part begins in the value), or
// null for nothing. ``suggest(text)``: the items, or a promise of them. ``option(item)``:
// the children of an item's option. ``choose(item, typed)``: put the item in the field.
// ``counted(n)``: what is announced for n suggestions (nothing when it returns "").
// ``delay``: ms to wait after typing before asking (for a request to the server).
// ``tabPicks``: Tab picks too (the composer, where Tab would leave the message box).
// ``openOnArrow``: Down opens the list on a closed field. ``optionIds``: the options' id
// prefix (default: the listbox's id and "-option").
export function combobox({
  field,
  id,
  optionIds = `${id}-option`,
  label,
  container,
  query,
  suggest,
  option,
  choose,
  counted,
  className = "suggestions",
  delay = 0,
  tabPicks = false,
  openOnArrow = false,
}) {
  const listbox = h("ul", { id, class: className, role: "listbox", "aria-label": label, hidden: true });
  container.append(listbox);
  const isInput = field.tagName === "INPUT";
  if (isInput) {
    field.setAttribute("role", "combobox");
    field.setAttribute("aria-expanded", "false");
  } else {
    // WAI-ARIA 1.2 lets a textbox say it has a popup (aria-haspopup), not aria-expanded.
    field.setAttribute("aria-haspopup", "listbox");
  }
  field.setAttribute("aria-autocomplete", "list");
  field.setAttribute("aria-controls", id);

  let items = [];
  let active = -1;
  let typed = null;
  let lastAnnounced = null;
  let asked = 0; // the latest question: an older answer arriving late is dropped
  let timer = null;

  const isOpen = () => !listbox.hidden;
  const optionId = (index) => `${optionIds}-${index}`;

  function render() {
    listbox.replaceChildren(
      ...items.map((item, i) =>
        h(
          "li",
          { id: optionId(i), role: "option", class: "suggestion", "aria-selected": i === active ? "true" : "false", dataset: { index: i } },
          ...option(item),
        ),
      ),
    );
    if (active >= 0) {
      field.setAttribute("aria-activedescendant", optionId(active));
      byId(optionId(active))?.scrollIntoView({ block: "nearest" });
    } else {
      field.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    asked += 1;
    clearTimeout(timer);
    listbox.hidden = true;
    listbox.replaceChildren();
    items = [];
    active = -1;
    typed = null;
    lastAnnounced = null;
    field.removeAttribute("aria-activedescendant");
    if (isInput) field.setAttribute("aria-expanded", "false");
  }

  function tell(count) {
    if (count === lastAnnounced) return;
    lastAnnounced = count;
    const words = counted(count);
    if (words) announce(words);
  }

  function show(found, where) {
    typed = where;
    items = found;
    if (!items.length) {
      listbox.hidden = true;
      listbox.replaceChildren();
      active = -1;
      field.removeAttribute("aria-activedescendant");
      if (isInput) field.setAttribute("aria-expanded", "false");
      tell(0);
      return;
    }
    active = 0;
    listbox.hidden = false;
    if (isInput) field.setAttribute("aria-expanded", "true");
    render();
    tell(items.length);
  }

  async function ask(where, turn) {
    let found = [];
    try {
      found = await suggest(where.text);
    } catch {
      found = []; // offline, or refused: no suggestions, the field still works
    }
    if (turn === asked) show(found, where);
  }

  function refresh() {
    if (field.selectionStart !== field.selectionEnd) {
      close();
      return;
    }
    const where = query(field);
    if (where === null) {
      close();
      return;
    }
    asked += 1;
    const turn = asked;
    clearTimeout(timer);
    if (delay) timer = setTimeout(() => ask(where, turn), delay);
    else ask(where, turn);
  }

  function pick(index) {
    const item = items[index];
    const where = typed;
    if (item === undefined || where === null) return;
    close();
    choose(item, where);
    field.focus();
  }

  field.addEventListener("keydown", (event) => {
    if (event.isComposing) return;
    if (!isOpen()) {
      if (openOnArrow && event.key === "ArrowDown") {
        event.preventDefault();
        refresh();
      }
      return;
    }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      active = (active + step + items.length) % items.length;
      render();
    } else if ((event.key === "Enter" || (tabPicks && event.key === "Tab")) && !event.shiftKey) {
      event.preventDefault(); // picks; neither sends nor submits nor leaves the field
      pick(active);
    } else if (event.key === "Escape") {
      event.preventDefault(); // closes the list only (not a reply, an edit or a dialog)
      event.stopPropagation();
      close();
    }
  });
  field.addEventListener("input", refresh);
  field.addEventListener("click", refresh);
  field.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== field) close();
  }, 150));
  listbox.addEventListener("mousedown", (event) => {
    const target = event.target.closest("[role=option]");
    if (!target) return;
    event.preventDefault(); // the field keeps focus
    pick(Number(target.dataset.index));
  });

  return { close, isOpen, refresh, listbox };
}
