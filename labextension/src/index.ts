import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Widget } from '@lumino/widgets';

import { plotViewerUrl } from './api';
import { IPlotEntry } from './payloads';
import { HailPanel } from './panel';
import { PlotViewer } from './plotviewer';

const PLUGIN_ID = 'hail-emr-lab:plugin';

namespace CommandIDs {
  export const open = 'hail-emr-lab:open';
  export const refresh = 'hail-emr-lab:refresh';
  export const backup = 'hail-emr-lab:backup-now';
  export const restore = 'hail-emr-lab:restore';
}

/** The directory of the document in the main area (its plots/ is what the gallery shows). */
function documentDir(widget: Widget | null): string | null {
  const context = (widget as any)?.context;
  if (context && typeof context.path === 'string') {
    const local = context.path.includes(':')
      ? context.path.split(':').slice(1).join(':')
      : context.path;
    return PathExt.dirname(local);
  }
  return null;
}

/**
 * The Hail on EMR sidebar: cluster, sessions, live progress, plots, backup, jobs.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Hail on EMR sidebar',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ILayoutRestorer, ILabShell],
  activate: async (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    labShell: ILabShell | null
  ) => {
    let lastDir = '';
    const currentDir = (): string => {
      const dir = documentDir(app.shell.currentWidget);
      if (dir !== null) {
        lastDir = dir;
      }
      return lastDir;
    };

    const viewers = new WidgetTracker<PlotViewer>({
      namespace: 'hail-emr-lab-plot'
    });
    const openPlot = (dir: string, plot: IPlotEntry): void => {
      const id = `hail-plot-${encodeURIComponent(dir)}-${encodeURIComponent(plot.file)}`;
      const existing = viewers.find(w => w.id === id);
      if (existing) {
        existing.dispose(); // reload: the file may have been pulled again
      }
      const viewer = new PlotViewer(plotViewerUrl(dir, plot.file), plot.name);
      viewer.id = id;
      void viewers.add(viewer);
      app.shell.add(viewer, 'main');
      app.shell.activateById(viewer.id);
    };

    const panel = new HailPanel({ currentDir, openPlot, interval: 3 });
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'hail-emr-lab-panel');
    }
    if (labShell) {
      labShell.currentChanged.connect(() => {
        const before = lastDir;
        if (currentDir() !== before && panel.isVisible) {
          void panel.refresh();
        }
      });
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Hail: Show the Hail on EMR Sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Hail: Refresh the Sidebar',
      execute: () => panel.refresh()
    });
    app.commands.addCommand(CommandIDs.backup, {
      label: 'Hail: Back Up the Home Directory Now',
      execute: () => panel.sync('backup')
    });
    app.commands.addCommand(CommandIDs.restore, {
      label: 'Hail: Restore the Home Directory from S3',
      execute: () => panel.sync('restore')
    });
    if (palette) {
      for (const command of [
        CommandIDs.open,
        CommandIDs.refresh,
        CommandIDs.backup,
        CommandIDs.restore
      ]) {
        palette.addItem({ command, category: 'Hail on EMR' });
      }
    }

    if (settingRegistry) {
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        const apply = (): void => {
          const seconds = Number(settings.get('pollInterval').composite);
          if (Number.isFinite(seconds) && seconds >= 1) {
            panel.setInterval(seconds);
          }
        };
        apply();
        settings.changed.connect(apply);
      } catch (reason) {
        console.warn(
          'hail-emr-lab: could not load the sidebar settings',
          reason
        );
      }
    }
  }
};

export default plugin;
