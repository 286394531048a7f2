"""Which globals a confined client sees through the filtering proxy, and why.

Default deny: a global is forwarded only if its interface is listed here (or
added per app, ``--allow``).  The test for each row: does it let a client act
on anything but its *own* surfaces and the input the compositor chose to give
its focused surface?  If yes, it is hidden.

Allowed (``DEFAULT_ALLOW``):

=========================================== ==================================================
interface                                   why a normal app may have it
=========================================== ==================================================
wl_compositor, wl_subcompositor             create and compose its own surfaces
wl_shm                                      shared-memory buffers for its own surfaces
wl_seat                                     input, delivered only to its focused surfaces
wl_output, zxdg_output_manager_v1           output geometry and scale (read-only facts)
wl_data_device_manager                      clipboard/DnD: selection only while focused
zwp_primary_selection_device_manager_v1,    middle-click selection, same focus rule
gtk_primary_selection_device_manager
xdg_wm_base, zxdg_shell_v6, wl_shell        toplevels and popups of its own (v6/wl_shell:
                                            older toolkits; same powers)
zxdg_decoration_manager_v1,                 ask for server/client-side decorations
org_kde_kwin_server_decoration_manager
wp_viewporter, wp_fractional_scale_manager  scaling of its own buffers
_v1, wp_single_pixel_buffer_manager_v1
wp_presentation                             frame timing feedback for its own surfaces
zwp_linux_dmabuf_v1, wl_drm,                GPU buffers (Mesa needs these for EGL/Vulkan);
zwp_linux_explicit_synchronization_v1,      explicit fences on its own buffers
wp_linux_drm_syncobj_manager_v1
xdg_activation_v1                           focus requests need a token from a user action
wp_cursor_shape_manager_v1                  named cursors on its own pointer focus
zwp_text_input_manager_v3, _v1              receive input-method text while focused
zwp_pointer_constraints_v1,                 games: lock/confine the pointer to its surface,
zwp_relative_pointer_manager_v1,            only while focused
zwp_pointer_gestures_v1, zwp_tablet_manager touchpad gestures and tablets, focus-bound
_v2
zwp_idle_inhibit_manager_v1                 keep the screen on while its surface is visible
                                            (video); the worst abuse is a lit screen
zxdg_exporter_v2, zxdg_importer_v2          portal dialogs parented to its windows; only
(and _v1)                                   handles exported on purpose can be imported
wp_content_type_manager_v1,                 hints about its own surfaces
wp_tearing_control_manager_v1
zwp_input_timestamps_manager_v1             high-resolution timestamps of its own input
=========================================== ==================================================

Hidden (not listed; the notable ones, each a way out of the app's own surfaces):

================================================= ============================================
zwlr_screencopy_manager_v1,                       read every pixel on screen, other apps'
zwlr_export_dmabuf_manager_v1, weston_capture_v1, windows included
weston_screenshooter, ext_image_copy_capture_*
zwlr_data_control_manager_v1                      read and set the clipboard without focus
zwp_virtual_keyboard_manager_v1,                  type and click into other apps' windows
zwlr_virtual_pointer_manager_v1
zwp_input_method_manager_v2                       become the input method: see every keystroke
                                                  typed into text fields of other apps
zwp_keyboard_shortcuts_inhibit_manager_v1,        take the compositor's own shortcuts (e.g.
zwp_xwayland_keyboard_grab_manager_v1,            lock or switch) away from the user
zwlr_input_inhibit_manager_v1
zwlr_foreign_toplevel_manager_v1,                 list, focus, close other apps' windows
ext_foreign_toplevel_list_v1
zwlr_output_manager_v1, zwlr_output_power_        reconfigure or switch off monitors, change
manager_v1, zwlr_gamma_control_manager_v1         their colours
zwlr_layer_shell_v1                               full-screen overlays above every window:
                                                  fake lock screens and password prompts
ext_session_lock_manager_v1                       lock (and so own) the whole session
ext_idle_notifier_v1, org_kde_kwin_idle           watch when the user is at the keyboard
wp_security_context_manager_v1                    mint new sockets with other metadata
wp_drm_lease_device_v1                            take a whole display (VR headsets)
xwayland_shell_v1, weston_desktop_shell,          privileged shells of the compositor's own
zwp_fullscreen_shell_v1, weston_* others          helpers
================================================= ============================================
"""

from __future__ import annotations

DEFAULT_ALLOW: frozenset[bytes] = frozenset(
    name.encode()
    for name in (
        "wl_compositor",
        "wl_subcompositor",
        "wl_shm",
        "wl_seat",
        "wl_output",
        "zxdg_output_manager_v1",
        "wl_data_device_manager",
        "zwp_primary_selection_device_manager_v1",
        "gtk_primary_selection_device_manager",
        "xdg_wm_base",
        "zxdg_shell_v6",
        "wl_shell",
        "zxdg_decoration_manager_v1",
        "org_kde_kwin_server_decoration_manager",
        "wp_viewporter",
        "wp_fractional_scale_manager_v1",
        "wp_single_pixel_buffer_manager_v1",
        "wp_presentation",
        "zwp_linux_dmabuf_v1",
        "wl_drm",
        "zwp_linux_explicit_synchronization_v1",
        "wp_linux_drm_syncobj_manager_v1",
        "xdg_activation_v1",
        "wp_cursor_shape_manager_v1",
        "zwp_text_input_manager_v3",
        "zwp_text_input_manager_v1",
        "zwp_pointer_constraints_v1",
        "zwp_relative_pointer_manager_v1",
        "zwp_pointer_gestures_v1",
        "zwp_tablet_manager_v2",
        "zwp_idle_inhibit_manager_v1",
        "zxdg_exporter_v2",
        "zxdg_importer_v2",
        "zxdg_exporter_v1",
        "zxdg_importer_v1",
        "wp_content_type_manager_v1",
        "wp_tearing_control_manager_v1",
        "zwp_input_timestamps_manager_v1",
    )
)
