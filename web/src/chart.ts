// The queue page's chart (uPlot): depth (ready, unacked; left axis) and
// rates (publish, deliver in msg/s; right axis) over the samples kept in
// history.ts. Sized to its container, redrawn on each new sample.
import uPlot from "uplot";
import type { Sample } from "./history";

export class QueueChart {
  private plot: uPlot | undefined;
  private readonly resize: ResizeObserver;

  constructor(private readonly box: HTMLElement) {
    this.resize = new ResizeObserver(() => {
      if (this.plot !== undefined && box.clientWidth > 0) {
        this.plot.setSize({ width: box.clientWidth, height: this.height() });
      }
    });
    this.resize.observe(box);
  }

  private height(): number {
    return window.innerWidth < 600 ? 180 : 240;
  }

  private make(): uPlot {
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue("--muted").trim() || "#667085";
    const line = css.getPropertyValue("--line").trim() || "#e3e6ec";
    const axis = (scale: string, label: string, side: number, grid: boolean): uPlot.Axis => ({
      scale, label, side, stroke: muted, labelSize: 18, size: 52,
      grid: { show: grid, stroke: line, width: 1 },
      ticks: { show: true, stroke: line, width: 1 },
    });
    return new uPlot({
      width: Math.max(this.box.clientWidth, 200),
      height: this.height(),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, msgs: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
                rate: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [
        {},
        { label: "ready", scale: "msgs", stroke: "#e25d00", width: 2, fill: "rgba(226,93,0,0.08)" },
        { label: "unacked", scale: "msgs", stroke: "#a06c00", width: 2 },
        { label: "publish msg/s", scale: "rate", stroke: "#127a3d", width: 1.5, dash: [6, 3] },
        { label: "deliver msg/s", scale: "rate", stroke: "#3466c2", width: 1.5, dash: [6, 3] },
      ],
      axes: [
        { stroke: muted, grid: { show: false }, ticks: { stroke: line } },
        axis("msgs", "messages", 3, true),
        axis("rate", "msg/s", 1, false),
      ],
    }, undefined, this.box);
  }

  update(list: readonly Sample[]): void {
    if (this.plot === undefined) this.plot = this.make();
    this.plot.setData([
      list.map((s) => s.t),
      list.map((s) => s.ready),
      list.map((s) => s.unacked),
      list.map((s) => s.publish),
      list.map((s) => s.deliver),
    ]);
  }

  clear(): void {
    this.plot?.destroy();
    this.plot = undefined;
  }
}
