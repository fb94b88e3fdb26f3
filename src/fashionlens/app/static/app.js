// Photo upload panel: send the photo to /api/categorize and /api/similar, show both answers.
(function () {
  "use strict";
  const drop = document.getElementById("drop");
  if (!drop) return;
  const input = document.getElementById("photo");
  const preview = document.getElementById("preview");
  const errorBox = document.getElementById("upload-error");
  const categories = document.getElementById("categories");
  const categoriesTitle = document.getElementById("categories-title");
  const caption = document.getElementById("caption");
  const similar = document.getElementById("upload-similar");
  const index = document.body.dataset.index;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function showError(msg) {
    errorBox.textContent = msg;
    errorBox.hidden = false;
  }

  async function post(url, file) {
    const body = new FormData();
    body.append("file", file);
    const res = await fetch(url, { method: "POST", body: body });
    const data = await res.json().catch(() => ({ error: "the server sent an unreadable answer" }));
    if (!res.ok) throw new Error(data.error || ("HTTP " + res.status));
    return data;
  }

  function renderCategories(data) {
    categories.replaceChildren();
    categoriesTitle.textContent = "Top " + data.top.length + " " + (data.label || "categories") + " (" + data.categorizer + ")";
    categoriesTitle.hidden = false;
    data.top.forEach((t) => {
      const li = el("li", { class: "category" });
      li.append(el("span", { class: "label" }, t.label));
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round(t.prob * 100) + "%";
      li.append(bar, el("span", { class: "prob" }, (t.prob * 100).toFixed(1) + "%"));
      categories.append(li);
    });
    caption.hidden = !data.caption;
    if (data.caption) caption.textContent = "Caption: " + data.caption;
  }

  function renderSimilar(data) {
    similar.replaceChildren();
    data.results.forEach((r) => {
      const a = el("a", { class: "card", href: r.url, "data-id": r.id });
      a.append(el("img", { src: r.thumb, alt: r.text || "" }), el("span", { class: "name" }, r.text || r.id),
               el("span", { class: "score" }, r.score.toFixed(3)));
      similar.append(a);
    });
  }

  async function handle(file) {
    if (!file) return;
    errorBox.hidden = true;
    categories.replaceChildren();
    categoriesTitle.hidden = true;
    similar.replaceChildren();
    caption.hidden = true;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    const jobs = [post("/api/similar?k=12&index=" + encodeURIComponent(index), file).then(renderSimilar)];
    if (drop.dataset.categorize === "1") {
      const pick = document.getElementById("categorizer-select");
      const q = pick ? "?categorizer=" + encodeURIComponent(pick.value) : "";
      jobs.push(post("/api/categorize" + q, file).then(renderCategories));
    }
    const done = await Promise.allSettled(jobs);
    const failed = done.find((d) => d.status === "rejected");
    if (failed) showError(failed.reason.message);
  }

  input.addEventListener("change", () => handle(input.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => handle(e.dataTransfer.files[0]));
})();
