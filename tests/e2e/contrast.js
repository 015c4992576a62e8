// Each element's text colour against the colour behind it (the ancestors' backgrounds blended,
// opacity applied), and for a field its border against what is around it: [what, ratio, needed].
// WCAG 2.2's relative luminance and contrast ratio (1.4.3 text 4.5:1, 1.4.11 a field's edge 3:1).
(selector) => {
  const rgba = (css) => { const v = css.match(/[\d.]+/g).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3])).concat([1]);
  const behind = (element) => {
    const layers = [];
    for (let e = element; e; e = e.parentElement) {
      const colour = rgba(getComputedStyle(e).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] === 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]);
  };
  const opacity = (element) => { let o = 1; for (let e = element; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity); return o; };
  const luminance = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const out = [];
  for (const element of document.querySelectorAll(selector)) {
    if (element.getClientRects().length === 0 || element.disabled || element.closest("dialog:not([open]), .skip")) continue;
    const style = getComputedStyle(element), ground = behind(element);
    const name = element.tagName + "." + element.className + " " + (element.textContent || element.name || "").trim().slice(0, 30);
    if (element.textContent.trim() || element.matches("input, select, textarea")) {
      const ink = rgba(style.color); ink[3] *= opacity(element);
      out.push([name + " text", ratio(over(ink, ground), ground), 4.5]);
    }
    if (element.matches("input:not([type=checkbox], [type=radio]), select, textarea")) {
      const around = behind(element.parentElement);
      out.push([name + " border", ratio(over(rgba(style.borderTopColor), around), around), 3]);
    }
  }
  return out;
}
