import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

/**
 * The Hail on EMR sidebar (placeholder until the sidebar issue lands).
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'hail-emr-lab:plugin',
  description: 'Hail on EMR sidebar',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const panel = new Widget();
    panel.id = 'hail-emr-lab-panel';
    panel.addClass('jp-HailPanel');
    panel.title.caption = 'Hail on EMR';
    panel.title.label = 'Hail';
    app.shell.add(panel, 'left', { rank: 600 });
  }
};

export default plugin;
