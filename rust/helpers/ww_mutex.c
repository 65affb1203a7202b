// SPDX-License-Identifier: GPL-2.0

#include <linux/ww_mutex.h>

__rust_helper void rust_helper_ww_acquire_init(struct ww_acquire_ctx *ctx,
					       struct ww_class *ww_class)
{
	ww_acquire_init(ctx, ww_class);
}

__rust_helper void rust_helper_ww_acquire_done(struct ww_acquire_ctx *ctx)
{
	ww_acquire_done(ctx);
}

__rust_helper void rust_helper_ww_acquire_fini(struct ww_acquire_ctx *ctx)
{
	ww_acquire_fini(ctx);
}
