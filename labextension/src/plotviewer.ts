import { Widget } from '@lumino/widgets';

/**
 * A main-area tab showing one plot. The plot is cluster-made HTML, so it runs only inside an
 * iframe with `sandbox="allow-scripts"` (never `allow-same-origin`): its scripts get an
 * opaque origin and cannot read this page, its cookies or its token. The server adds a CSP
 * with the same sandbox, in case the viewer URL is ever opened directly.
 */
export class PlotViewer extends Widget {
  constructor(url: string, name: string) {
    super();
    this.addClass('jp-HailPlotViewer');
    this.title.label = name;
    this.title.caption = `Plot ${name} (sandboxed)`;
    this.title.closable = true;
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-scripts');
    frame.setAttribute('title', name);
    frame.className = 'jp-HailPlotViewer-frame';
    frame.src = url;
    this.node.appendChild(frame);
  }
}
