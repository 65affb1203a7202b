// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-fence.h>
#include <linux/dma-fence-chain.h>
#include <linux/dma-resv.h>

__rust_helper struct dma_fence *rust_helper_dma_fence_get(struct dma_fence *fence)
{
	return dma_fence_get(fence);
}

__rust_helper void rust_helper_dma_fence_put(struct dma_fence *fence)
{
	dma_fence_put(fence);
}

__rust_helper bool rust_helper_dma_fence_is_signaled(struct dma_fence *fence)
{
	return dma_fence_is_signaled(fence);
}

__rust_helper bool rust_helper_dma_fence_test_signaled_flag(struct dma_fence *fence)
{
	return dma_fence_test_signaled_flag(fence);
}

__rust_helper void rust_helper_dma_fence_set_error(struct dma_fence *fence, int error)
{
	dma_fence_set_error(fence, error);
}

__rust_helper struct dma_fence_chain *rust_helper_dma_fence_chain_alloc(void)
{
	return dma_fence_chain_alloc();
}

__rust_helper void rust_helper_dma_fence_chain_free(struct dma_fence_chain *chain)
{
	dma_fence_chain_free(chain);
}

__rust_helper int rust_helper_dma_resv_lock_interruptible(struct dma_resv *obj,
							  struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_interruptible(obj, ctx);
}

__rust_helper int
rust_helper_dma_resv_lock_slow_interruptible(struct dma_resv *obj,
					     struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_slow_interruptible(obj, ctx);
}

__rust_helper bool rust_helper_dma_resv_is_locked(struct dma_resv *obj)
{
	return dma_resv_is_locked(obj);
}

__rust_helper void rust_helper_dma_resv_iter_begin(struct dma_resv_iter *cursor,
						   struct dma_resv *obj,
						   enum dma_resv_usage usage)
{
	dma_resv_iter_begin(cursor, obj, usage);
}

__rust_helper bool rust_helper_dma_fence_begin_signalling(void)
{
	return dma_fence_begin_signalling();
}

__rust_helper void rust_helper_dma_fence_end_signalling(bool cookie)
{
	dma_fence_end_signalling(cookie);
}

__rust_helper unsigned long rust_helper_dma_fence_lock_irqsave(struct dma_fence *fence)
{
	unsigned long flags;

	dma_fence_lock_irqsave(fence, flags);
	return flags;
}

__rust_helper void rust_helper_dma_fence_unlock_irqrestore(struct dma_fence *fence,
							   unsigned long flags)
{
	dma_fence_unlock_irqrestore(fence, flags);
}
